package identity

import "time"

// SetBackoff shortens a Source's retry backoff for tests.
func SetBackoff(s *Source, lo, hi time.Duration) { s.minBO, s.maxBO = lo, hi }
