package discovery

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu      sync.Mutex
	started []Outcome
	ended   []Outcome
	pushes  []Push
}

func (r *recorder) StreamStarted(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, o)
}

func (r *recorder) StreamEnded(o Outcome) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, o)
}

func (r *recorder) Pushed(p Push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushes = append(r.pushes, p)
}

func (r *recorder) get() (started, ended []Outcome, pushes []Push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.started), slices.Clone(r.ended), slices.Clone(r.pushes)
}

// pushKinds summarizes pushes as "full", "delta", with "@snapshot" when a
// snapshot caused them.
func pushKinds(ps []Push) []string {
	var out []string
	for _, p := range ps {
		k := "delta"
		if p.Full {
			k = "full"
		}
		if p.FromSnapshot {
			k += "@snapshot"
		}
		if p.Err != nil {
			k += "!"
		}
		out = append(out, k)
	}
	return out
}

func TestObserverSeesStreamsAndPushes(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1")},
	})
	rec := &recorder{}
	refuse := ref("bank/vault-0")
	srv, c := serve(t, store, func(s *Server) {
		s.Observer = rec
		s.Authorize = func(_ context.Context, r model.Ref, _ *model.Workload) error {
			if r == refuse {
				return errors.New("not yours")
			}
			return nil
		}
	})

	// Turned away: a bad first request, and a caller not authorized.
	bad := open(t, c, &meshv1.StreamRequest{Subscribe: refs("shop/cart")})
	if _, ok := <-bad.ch; ok {
		t.Fatal("a stream without a workload was served")
	}
	denied := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(refuse)})
	if _, ok := <-denied.ch; ok {
		t.Fatal("an unauthorized stream was served")
	}

	ts := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1")), Subscribe: refs("shop/cart", "shop/prices")})
	ts.expect("workload shop/web-1 198.18.0.1; shop/cart full svc(1 ports); shop/prices gone")
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.2")}})
	ts.expect("shop/cart delta +shop/cart-1@198.18.0.2")
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}})
	ts.expect("shop/prices full svc(1 ports)")
	// A new subscription's full state is not caused by a snapshot.
	ts.send(&meshv1.StreamRequest{Subscribe: refs("shop/stock")})
	ts.expect("shop/stock gone")
	ts.st.CloseSend()
	waitFor(t, func() bool { _, ended, _ := rec.get(); return len(ended) == 1 })

	// Shutting down ends streams as ok and refuses new ones.
	other := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-2"))})
	other.next()
	srv.Close()
	if _, ok := <-other.ch; ok {
		t.Fatal("stream survived Close")
	}
	late := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-3"))})
	if _, ok := <-late.ch; ok {
		t.Fatal("a stream was served after Close")
	}
	if _, err := late.st.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("stream after Close: %v, want Unavailable", err)
	}

	waitFor(t, func() bool { s, e, _ := rec.get(); return len(s) == 5 && len(e) == 2 })
	started, ended, pushes := rec.get()
	// The two turned away may be counted in either order.
	slices.Sort(started[:2])
	if want := []Outcome{OutcomeError, OutcomeRefused, OutcomeOK, OutcomeOK, OutcomeRefused}; !slices.Equal(started, want) {
		t.Errorf("started %v, want %v", started, want)
	}
	if want := []Outcome{OutcomeOK, OutcomeOK}; !slices.Equal(ended, want) {
		t.Errorf("ended %v, want %v", ended, want)
	}
	if got, want := pushKinds(pushes), []string{"full", "delta@snapshot", "full@snapshot", "full", "full"}; !slices.Equal(got, want) {
		t.Errorf("pushes %v, want %v", got, want)
	}
	for _, p := range pushes {
		if p.FromSnapshot && (p.Lag < 0 || p.Lag > 10*time.Second) {
			t.Errorf("push lag %v", p.Lag)
		}
	}
}

// TestPushLagFromOldestChange: a stream that is behind measures its push
// from the oldest change it had not sent, and one push covers the changes
// it coalesced.
func TestPushLagFromOldestChange(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/cart", "cart")}})
	srv := NewServer(store, testLogger(t))
	rec := &recorder{}
	srv.Observer = rec
	var clock atomic.Int64 // seconds
	srv.now = func() time.Time { return time.Unix(clock.Load(), 0) }
	ctx, cancel := context.WithCancel(context.Background())
	bs := &blockingStream{ctx: ctx, sent: make(chan *meshv1.StreamResponse),
		first: &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1")), Subscribe: refs("shop/cart")}}
	done := make(chan error)
	go func() { done <- srv.Stream(bs) }()
	<-bs.sent // the full state

	// Change A, seen at 100 s, gets the stream stuck in Send.
	clock.Store(100)
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-0", "cart", "198.18.0.1")}})
	v := store.Snapshot().Version
	waitFor(t, func() bool { return srv.current.Load().Version == v })
	// The watcher marks streams holding s.mu, after publishing current: once
	// the stream's mark is cleared, it has taken A and blocks sending it.
	waitFor(t, func() bool {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		for st := range srv.streams {
			st.mu.Lock()
			pending := st.pending
			st.mu.Unlock()
			if !pending.IsZero() {
				return false
			}
		}
		return true
	})
	// Changes B and C, seen at 101 s, wait.
	clock.Store(101)
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-0", "cart", "198.18.0.2")}})
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-0", "cart", "198.18.0.3")}})
	v = store.Snapshot().Version
	waitFor(t, func() bool { return srv.current.Load().Version == v })
	// A goes out at 103 s, then B and C together, also at 103 s.
	clock.Store(103)
	<-bs.sent
	if got := summary(<-bs.sent); got != "shop/cart delta +shop/cart-0@198.18.0.3" {
		t.Fatalf("coalesced delta %q", got)
	}
	cancel()
	<-done

	_, _, pushes := rec.get()
	if len(pushes) != 3 {
		t.Fatalf("pushes %+v, want the full state and two deltas", pushes)
	}
	if p := pushes[1]; !p.FromSnapshot || p.Lag != 3*time.Second {
		t.Errorf("push of A: %+v, want a lag of 3s (seen at 100s, sent at 103s)", p)
	}
	if p := pushes[2]; !p.FromSnapshot || p.Lag != 2*time.Second || p.Full {
		t.Errorf("push of B and C: %+v, want one delta with a lag of 2s (B seen at 101s)", p)
	}
}
