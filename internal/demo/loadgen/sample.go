package loadgen

import (
	"math/rand/v2"
	"slices"
	"time"
)

// sampleCap bounds the latencies kept per sample, so a long run's memory
// stays flat: beyond it, reservoir sampling keeps a uniform subset.
const sampleCap = 10_000

// sample is a set of latencies with percentiles; not safe for concurrent use.
type sample struct {
	seen int64
	kept []time.Duration
}

func (s *sample) add(d time.Duration) {
	s.seen++
	if len(s.kept) < sampleCap {
		s.kept = append(s.kept, d)
		return
	}
	if i := rand.Int64N(s.seen); i < sampleCap {
		s.kept[i] = d
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100), or 0 for
// an empty sample. It sorts the kept latencies in place.
func (s *sample) percentile(p float64) time.Duration {
	if len(s.kept) == 0 {
		return 0
	}
	slices.Sort(s.kept)
	rank := int(float64(len(s.kept))*p/100+0.999999) - 1
	return s.kept[min(max(rank, 0), len(s.kept)-1)]
}
