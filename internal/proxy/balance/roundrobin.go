package balance

import (
	"sync/atomic"

	"github.com/weftmesh/weft/internal/model"
)

// roundRobin hands out endpoints in turn. It keeps no per-endpoint state,
// so it suits equal backends and is the baseline the others are measured
// against.
type roundRobin struct {
	endpoints atomic.Pointer[[]*model.Endpoint]
	next      atomic.Uint64
}

var _ Balancer = (*roundRobin)(nil)

func newRoundRobin() *roundRobin {
	b := &roundRobin{}
	b.endpoints.Store(&[]*model.Endpoint{})
	return b
}

func (b *roundRobin) Update(endpoints []*model.Endpoint) {
	eps := append([]*model.Endpoint(nil), endpoints...)
	b.endpoints.Store(&eps)
}

func (b *roundRobin) Pick(skip func(*model.Endpoint) bool) (*model.Endpoint, Done, error) {
	eps := *b.endpoints.Load()
	if len(eps) == 0 {
		return nil, nil, ErrNoEndpoints
	}
	n := uint64(len(eps))
	i := b.next.Add(1) - 1
	for k := range n {
		if ep := eps[(i+k)%n]; skip == nil || !skip(ep) {
			return ep, noop, nil
		}
	}
	return nil, nil, ErrAllSkipped
}
