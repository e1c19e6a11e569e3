package balance

import (
	"errors"
	"fmt"
	"maps"
	"slices"
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
			if _, _, err := b.Pick(nil); !errors.Is(err, ErrNoEndpoints) {
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
				_, done, _ := b.Pick(nil)
				done(nil)
			}
			b.Update(endpoints("a", "c"))
			for range 1000 {
				ep, done, err := b.Pick(nil)
				if err != nil {
					t.Fatal(err)
				}
				if ep.ID == "b" {
					t.Fatal("picked removed endpoint b")
				}
				done(nil)
			}
			b.Update(nil)
			if _, _, err := b.Pick(nil); !errors.Is(err, ErrNoEndpoints) {
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
		ep, done, _ := b.Pick(nil)
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
		ep, done, _ := b.Pick(nil)
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
		ep, done, _ := b.Pick(nil)
		if ep.ID == "busy" {
			t.Fatal("picked the endpoint with 10 requests in flight over an idle one")
		}
		done(nil)
	}
	// The load survives an Update that keeps the endpoint.
	b.Update(endpoints("busy", "idle", "new"))
	for range 100 {
		ep, done, _ := b.Pick(nil)
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
						if _, done, err := b.Pick(nil); err == nil {
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

func skipIDs(ids ...string) func(*model.Endpoint) bool {
	return func(ep *model.Endpoint) bool { return slices.Contains(ids, ep.ID) }
}

// TestPickSkips holds for every balancer: Pick never returns a skipped
// endpoint, still reaches every other one, and says so when none is left.
// Requests are held until the end, so that a latency-aware balancer
// spreads them by load rather than settling on whichever endpoint
// happened to answer first.
func TestPickSkips(t *testing.T) {
	tests := []struct {
		desc    string
		eps     []*model.Endpoint
		skip    func(*model.Endpoint) bool
		want    []string // every endpoint picked, sorted
		wantErr error
	}{
		{desc: "nil skips none", eps: endpoints("a", "b", "c"), want: []string{"a", "b", "c"}},
		{desc: "skips one", eps: endpoints("a", "b", "c"), skip: skipIDs("b"), want: []string{"a", "c"}},
		{desc: "all but one", eps: endpoints("a", "b", "c"), skip: skipIDs("a", "c"), want: []string{"b"}},
		{desc: "skip of unknown endpoints", eps: endpoints("a", "b"), skip: skipIDs("z"), want: []string{"a", "b"}},
		{desc: "all skipped", eps: endpoints("a", "b"), skip: skipIDs("a", "b"), wantErr: ErrAllSkipped},
		{desc: "empty set", skip: skipIDs("a"), wantErr: ErrNoEndpoints},
	}
	for _, name := range Names() {
		for _, tc := range tests {
			t.Run(name+"/"+tc.desc, func(t *testing.T) {
				b, _ := New(name)
				b.Update(tc.eps)
				seen := map[string]bool{}
				var held []Done
				defer func() {
					for _, d := range held {
						d(nil)
					}
				}()
				for range 300 {
					ep, done, err := b.Pick(tc.skip)
					if tc.wantErr != nil {
						if !errors.Is(err, tc.wantErr) {
							t.Fatalf("Pick: err = %v, want %v", err, tc.wantErr)
						}
						return
					}
					if err != nil {
						t.Fatalf("Pick: %v", err)
					}
					seen[ep.ID] = true
					held = append(held, done)
				}
				if got := slices.Sorted(maps.Keys(seen)); !slices.Equal(got, tc.want) {
					t.Fatalf("picked %v, want %v", got, tc.want)
				}
			})
		}
	}
}

// TestP2CComparesTwoKept: the two candidates are drawn from the endpoints
// not skipped, so a skipped endpoint never stands in for the idle one and
// lets the loaded one win.
func TestP2CComparesTwoKept(t *testing.T) {
	b, _ := New(P2C)
	b.Update(endpoints("busy"))
	var held []Done
	for range 10 {
		_, done, _ := b.Pick(nil)
		held = append(held, done)
	}
	b.Update(endpoints("busy", "idle", "dead"))
	for range 100 {
		ep, done, err := b.Pick(skipIDs("dead"))
		if err != nil {
			t.Fatal(err)
		}
		if ep.ID != "idle" {
			t.Fatalf("picked %s, want idle: the only other endpoint kept is loaded", ep.ID)
		}
		done(nil)
	}
	for _, d := range held {
		d(nil)
	}
}

// TestModelNamesEveryBalancer: a Service may name exactly the balancers
// the proxy has.
func TestModelNamesEveryBalancer(t *testing.T) {
	if got, want := fmt.Sprint(Names()), fmt.Sprint(slices.Sorted(slices.Values(model.LoadBalancers))); got != want {
		t.Errorf("balancers %s, the model lets Services name %s", got, want)
	}
}
