package control

import (
	"math/rand/v2"
	"time"
)

const (
	minBackoff = 100 * time.Millisecond
	// maxBackoff keeps a proxy from waiting long after the control plane
	// is back; the jitter keeps thousands of proxies from arriving at once.
	maxBackoff = 5 * time.Second
)

// backoffTimer gives exponentially growing waits with "equal jitter": half
// the step fixed, half random.
type backoffTimer struct{ step time.Duration }

func (b *backoffTimer) next() time.Duration {
	if b.step == 0 {
		b.step = minBackoff
	}
	d := b.step/2 + rand.N(b.step/2+1)
	b.step = min(b.step*2, maxBackoff)
	return d
}

func (b *backoffTimer) reset() { b.step = 0 }
