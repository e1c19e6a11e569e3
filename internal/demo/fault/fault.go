package fault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrInjected is what Apply returns when the error rate says this request
// fails.
var ErrInjected = errors.New("injected fault")

// Settings are the fault switches of one service.
type Settings struct {
	// Latency is added before every request is handled.
	Latency time.Duration `json:"latency"`
	// Jitter adds a further uniformly random delay in [0, Jitter).
	Jitter time.Duration `json:"latency_jitter"`
	// ErrorRate is the share of requests, 0..1, that fail.
	ErrorRate float64 `json:"error_rate"`
}

// Validate reports the first setting out of range.
func (s Settings) Validate() error {
	switch {
	case s.Latency < 0:
		return fmt.Errorf("latency %s: must be >= 0", s.Latency)
	case s.Jitter < 0:
		return fmt.Errorf("latency jitter %s: must be >= 0", s.Jitter)
	case !(s.ErrorRate >= 0 && s.ErrorRate <= 1): // also rejects NaN
		return fmt.Errorf("error rate %v: must be within 0..1", s.ErrorRate)
	}
	return nil
}

// Injector applies the current Settings; it is safe for concurrent use. The
// zero Injector injects nothing until Set.
type Injector struct {
	mu sync.RWMutex
	s  Settings
}

// New returns an Injector with the given settings.
func New(s Settings) (*Injector, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &Injector{s: s}, nil
}

// Settings returns the current settings.
func (in *Injector) Settings() Settings {
	in.mu.RLock()
	defer in.mu.RUnlock()
	return in.s
}

// Set replaces the settings; invalid settings are refused and change nothing.
func (in *Injector) Set(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in.mu.Lock()
	in.s = s
	in.mu.Unlock()
	return nil
}

// Apply waits the configured latency, then draws against the error rate. It
// returns ErrInjected if this request is to fail, and the context's error if
// the context ends during the wait. A nil Injector injects nothing.
func (in *Injector) Apply(ctx context.Context) error {
	if in == nil {
		return nil
	}
	s := in.Settings()
	if d := s.delay(); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return fmt.Errorf("fault latency %s: %w", d, context.Cause(ctx))
		}
	}
	// rand.Float64 is in [0,1): a rate of 0 never fails, 1 always does.
	if s.ErrorRate > 0 && rand.Float64() < s.ErrorRate {
		return ErrInjected
	}
	return nil
}

func (s Settings) delay() time.Duration {
	d := s.Latency
	if s.Jitter > 0 {
		d += rand.N(s.Jitter)
	}
	return d
}
