package balance

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func endpoints(ids ...string) []*model.Endpoint {
	out := make([]*model.Endpoint, len(ids))
	for i, id := range ids {
		out[i] = &model.Endpoint{ID: id}
	}
	return out
}

func TestRegistry(t *testing.T) {
	for _, name := range append(Names(), "") {
		t.Run(fmt.Sprintf("name=%q", name), func(t *testing.T) {
			b, err := New(name)
			if err != nil {
				t.Fatalf("New(%q): %v", name, err)
			}
			if _, _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) {
				t.Fatalf("Pick on empty set: err = %v, want ErrNoEndpoints", err)
			}
		})
	}
	if _, err := New("random-walk"); err == nil {
		t.Fatal(`New("random-walk") succeeded, want an error`)
	}
}

// TestNeverPicksRemoved holds for every balancer: once Update returns, a
// removed endpoint is never picked again.
func TestNeverPicksRemoved(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b, _ := New(name)
			b.Update(endpoints("a", "b", "c"))
			for range 10 {
				_, done, _ := b.Pick()
				done(nil)
			}
			b.Update(endpoints("a", "c"))
			for range 1000 {
				ep, done, err := b.Pick()
				if err != nil {
					t.Fatal(err)
				}
				if ep.ID == "b" {
					t.Fatal("picked removed endpoint b")
				}
				done(nil)
			}
			b.Update(nil)
			if _, _, err := b.Pick(); !errors.Is(err, ErrNoEndpoints) {
				t.Fatalf("after emptying: err = %v, want ErrNoEndpoints", err)
			}
		})
	}
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	b, _ := New(RoundRobin)
	b.Update(endpoints("a", "b", "c"))
	counts := map[string]int{}
	for range 300 {
		ep, done, _ := b.Pick()
		counts[ep.ID]++
		done(nil)
	}
	for _, id := range []string{"a", "b", "c"} {
		if counts[id] != 100 {
			t.Fatalf("counts = %v, want 100 each", counts)
		}
	}
}

func TestP2CAvoidsLoadedEndpoint(t *testing.T) {
	b, _ := New(P2C)
	b.Update(endpoints("busy", "idle"))
	// Load both by holding every pick, then release those on "idle":
	// p2c itself would never let "busy" get ahead.
	var held, idle []Done
	for len(held) < 10 {
		ep, done, _ := b.Pick()
		if ep.ID == "busy" {
			held = append(held, done)
		} else {
			idle = append(idle, done)
		}
	}
	for _, d := range idle {
		d(nil)
	}
	for range 100 {
		ep, done, _ := b.Pick()
		if ep.ID == "busy" {
			t.Fatal("picked the endpoint with 10 requests in flight over an idle one")
		}
		done(nil)
	}
	// The load survives an Update that keeps the endpoint.
	b.Update(endpoints("busy", "idle", "new"))
	for range 100 {
		ep, done, _ := b.Pick()
		if ep.ID == "busy" {
			t.Fatal("load on busy was forgotten across Update")
		}
		done(nil)
	}
	for _, d := range held {
		d(nil)
	}
}

func TestConcurrentPickAndUpdate(t *testing.T) {
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			b, _ := New(name)
			b.Update(endpoints("a", "b"))
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for range 2000 {
						if _, done, err := b.Pick(); err == nil {
							done(nil)
						}
					}
				})
			}
			wg.Go(func() {
				for i := range 200 {
					if i%2 == 0 {
						b.Update(endpoints("a", "b", "c"))
					} else {
						b.Update(endpoints("c"))
					}
				}
			})
			wg.Wait()
		})
	}
}
