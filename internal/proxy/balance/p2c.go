package balance

import (
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/model"
)

// p2c is "power of two choices" over requests in flight: pick two
// endpoints at random and use the one with fewer requests outstanding.
// It avoids the herd behaviour of plain least-loaded while steering away
// from slow or stuck endpoints.
type p2c struct {
	mu    sync.Mutex // serializes Update
	items atomic.Pointer[[]p2cItem]
}

type p2cItem struct {
	ep *model.Endpoint
	// inflight is shared by every version of an endpoint with this ID, so a
	// request picked before an Update is still counted after it.
	inflight *atomic.Int64
}

var _ Balancer = (*p2c)(nil)

func newP2C() *p2c {
	b := &p2c{}
	b.items.Store(&[]p2cItem{})
	return b
}

func (b *p2c) Update(endpoints []*model.Endpoint) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := make(map[string]*atomic.Int64, len(*b.items.Load()))
	for _, it := range *b.items.Load() {
		old[it.ep.ID] = it.inflight
	}
	items := make([]p2cItem, len(endpoints))
	for i, ep := range endpoints {
		n, ok := old[ep.ID]
		if !ok {
			n = new(atomic.Int64)
		}
		items[i] = p2cItem{ep: ep, inflight: n}
	}
	b.items.Store(&items)
}

func (b *p2c) Pick(skip func(*model.Endpoint) bool) (*model.Endpoint, Done, error) {
	items := *b.items.Load()
	if len(items) == 0 {
		return nil, nil, ErrNoEndpoints
	}
	if skip != nil {
		// Filter rather than sample and reject: the two candidates must be
		// distinct and both eligible, or a skipped endpoint could decide the
		// comparison. Only retries skip, so the copy is off the common path.
		kept := make([]p2cItem, 0, len(items))
		for _, it := range items {
			if !skip(it.ep) {
				kept = append(kept, it)
			}
		}
		if len(kept) == 0 {
			return nil, nil, ErrAllSkipped
		}
		items = kept
	}
	it := items[0]
	if len(items) > 1 {
		i := rand.IntN(len(items))
		j := rand.IntN(len(items) - 1)
		if j >= i {
			j++
		}
		it = items[i]
		if items[j].inflight.Load() < it.inflight.Load() {
			it = items[j]
		}
	}
	it.inflight.Add(1)
	return it.ep, func(error) { it.inflight.Add(-1) }, nil
}
