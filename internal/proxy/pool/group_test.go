package pool

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testutil/dialcount"
)

// queueFunc is a Queue made of a function.
type queueFunc func() (func(), error)

func (f queueFunc) Wait() (func(), error) { return f() }

// anyWait lets every request wait, and counts those that did.
func anyWait(waited *atomic.Int32) Queue {
	return queueFunc(func() (func(), error) {
		waited.Add(1)
		return func() {}, nil
	})
}

func groupGet(g http.RoundTripper, addr string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := g.RoundTrip(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestGroupNeverOpensMoreThanMaxConns(t *testing.T) {
	release := make(chan struct{})
	var started atomic.Int32
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-release
		w.Write([]byte("ok"))
	})
	d := &dialcount.Dialer{}
	p := New(Options{Dialer: d})
	defer p.Close()
	// One request per connection: each request needs a connection, and
	// only two may be open.
	var waited atomic.Int32
	g := p.Group("demo/api:80", Limits{MaxConns: 2, MaxRequestsPerConn: 1}, anyWait(&waited))
	const n = 6
	errs := make(chan error, n)
	for range n {
		go func() {
			body, err := groupGet(g, addr)
			if err == nil && body != "ok" {
				err = errors.New("body " + body)
			}
			errs <- err
		}()
	}
	waitFor(t, "two requests at the peer", func() bool { return started.Load() == 2 })
	waitFor(t, "four requests waiting", func() bool { return waited.Load() == 4 })
	time.Sleep(50 * time.Millisecond) // give a third connection every chance
	if dials, _, _ := d.Counts(); dials != 2 || started.Load() != 2 {
		t.Fatalf("with 2 connections busy, %d dials and %d requests at the peer; want 2 and 2", dials, started.Load())
	}
	close(release)
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("a request that waited for a connection: %v", err)
		}
	}
	dials, _, peak := d.Counts()
	if peak > 2 {
		t.Errorf("%d connections open at once, want at most 2", peak)
	}
	if dials != n {
		t.Errorf("%d dials for %d requests of one connection each", dials, n)
	}
	waitFor(t, "retired connections closed", func() bool { _, live, _ := d.Counts(); return live == 0 && g.Conns() == 0 })
}

func TestGroupRefusesWhatItsQueueRefuses(t *testing.T) {
	release := make(chan struct{})
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("ok"))
	})
	p := New(Options{})
	defer p.Close()
	full := errors.New("queue full")
	g := p.Group("demo/api:80", Limits{MaxConns: 1, MaxRequestsPerConn: 1}, queueFunc(func() (func(), error) { return nil, full }))
	first := make(chan error, 1)
	go func() {
		_, err := groupGet(g, addr)
		first <- err
	}()
	waitFor(t, "the first connection", func() bool { return g.Conns() == 1 })
	start := time.Now()
	_, err := groupGet(g, addr)
	if !errors.Is(err, ErrConnLimit) || !errors.Is(err, full) {
		t.Fatalf("second request = %v, want ErrConnLimit wrapping the queue's refusal", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal took %s, want it at once", took)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first request: %v", err)
	}
	// A group without a queue refuses the same way.
	g2 := p.Group("demo/other:80", Limits{MaxConns: 1, MaxRequestsPerConn: 1}, nil)
	hold := make(chan struct{})
	addr2, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) { <-hold })
	go groupGet(g2, addr2)
	waitFor(t, "the other group's connection", func() bool { return g2.Conns() == 1 })
	if _, err := groupGet(g2, addr2); !errors.Is(err, ErrConnLimit) {
		t.Fatalf("without a queue = %v, want ErrConnLimit", err)
	}
	close(hold)
}

func TestGroupRetiresConnectionsAfterMaxRequests(t *testing.T) {
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	t.Run("one after another", func(t *testing.T) {
		d := &dialcount.Dialer{}
		p := New(Options{Dialer: d})
		defer p.Close()
		g := p.Group("demo/api:80", Limits{MaxRequestsPerConn: 3}, nil)
		for i := range 10 {
			if _, err := groupGet(g, addr); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		if dials, _, _ := d.Counts(); dials != 4 {
			t.Errorf("10 requests, 3 per connection, dialed %d connections; want 4", dials)
		}
		// The fourth connection has a request left; the others closed.
		waitFor(t, "retired connections closed", func() bool { _, live, _ := d.Counts(); return live == 1 })
	})
	t.Run("all at once", func(t *testing.T) {
		d := &dialcount.Dialer{}
		p := New(Options{Dialer: d})
		defer p.Close()
		g := p.Group("demo/api:80", Limits{MaxRequestsPerConn: 2}, nil)
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range 40 {
			wg.Go(func() {
				if body, err := groupGet(g, addr); err != nil || body != "ok" {
					t.Logf("request: %q, %v", body, err)
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if failed.Load() > 0 {
			t.Fatalf("%d of 40 requests failed", failed.Load())
		}
		dials, _, _ := d.Counts()
		if dials < 20 {
			t.Errorf("40 requests, 2 per connection, dialed only %d connections", dials)
		}
		// A connection that carried 2 closed; one that carried fewer stays
		// for the next request.
		waitFor(t, "every connection that carried 2 requests closed", func() bool {
			g.mu.Lock()
			defer g.mu.Unlock()
			_, live, _ := d.Counts()
			for _, gc := range g.conns {
				if gc.served >= 2 {
					return false
				}
			}
			return live == len(g.conns)
		})
	})
}

func TestGroupReclaimsAnIdleConnection(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }
	a, _ := peerServer(t, ok)
	b, _ := peerServer(t, ok)
	d := &dialcount.Dialer{}
	p := New(Options{Dialer: d})
	defer p.Close()
	// One connection for two peers, and no queue: the idle connection to
	// one peer makes way for the other.
	g := p.Group("demo/api:80", Limits{MaxConns: 1}, nil)
	for i, addr := range []string{a, b, a, a, b} {
		if _, err := groupGet(g, addr); err != nil {
			t.Fatalf("request %d to %s: %v", i, addr, err)
		}
	}
	dials, _, peak := d.Counts()
	if peak != 1 {
		t.Errorf("%d connections open at once, want 1", peak)
	}
	if dials != 4 {
		t.Errorf("%d dials, want 4 (one each time the peer changes)", dials)
	}
}

func TestGroupAloneGivesEachRequestAConnection(t *testing.T) {
	release := make(chan struct{})
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-release
	})
	d := &dialcount.Dialer{}
	p := New(Options{Dialer: d})
	defer p.Close()
	g := p.Group("demo/db:5432", Limits{MaxConns: 2}, nil)
	open := func() (*http.Response, error) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		return g.Alone().RoundTrip(req)
	}
	r1, err := open()
	if err != nil {
		t.Fatal(err)
	}
	r2, err := open()
	if err != nil {
		t.Fatal(err)
	}
	if dials, _, _ := d.Counts(); dials != 2 {
		t.Fatalf("two streams alone dialed %d connections, want 2", dials)
	}
	if _, err := open(); !errors.Is(err, ErrConnLimit) {
		t.Fatalf("a third stream with 2 connections open = %v, want ErrConnLimit", err)
	}
	// A stream's end closes its connection, which makes room.
	r1.Body.Close()
	waitFor(t, "the first stream's connection closed", func() bool { return g.Conns() == 1 })
	r3, err := open()
	if err != nil {
		t.Fatalf("after a stream ended: %v", err)
	}
	close(release)
	r2.Body.Close()
	r3.Body.Close()
	waitFor(t, "every connection closed", func() bool { _, live, _ := d.Counts(); return live == 0 })
	if _, _, peak := d.Counts(); peak > 2 {
		t.Errorf("%d connections open at once, want at most 2", peak)
	}
}

func TestGroupLivesWhileAskedFor(t *testing.T) {
	addr, conns := peerServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	p := New(Options{})
	defer p.Close()
	l := Limits{MaxConns: 4}
	g := p.Group("demo/api:80", l, nil)
	if _, err := groupGet(g, addr); err != nil {
		t.Fatal(err)
	}
	p.Retain(map[string]bool{addr: true}) // the config that asked for it
	if p.Group("demo/api:80", l, nil) != g {
		t.Fatal("a group asked for again is a new one")
	}
	p.Retain(map[string]bool{addr: true})
	if got := p.Peers()[addr]; got != 1 {
		t.Fatalf("Peers()[%s] = %d, want the group's 1", addr, got)
	}
	p.Retain(map[string]bool{addr: true}) // a config that did not ask for it
	waitFor(t, "the group's connection closed", func() bool { return conns.Load() == 0 })
	// A request it still gets goes on the shared connections.
	if body, err := groupGet(g, addr); err != nil || body != "ok" {
		t.Fatalf("request through a retired group = %q, %v", body, err)
	}
	if g.Conns() != 0 || p.Peers()[addr] != 1 {
		t.Fatalf("retired group holds %d connections, pool %d; want 0 and the shared 1", g.Conns(), p.Peers()[addr])
	}
	if p.Group("demo/api:80", l, nil) == g {
		t.Fatal("a retired group came back")
	}
}

func TestGroupWaitEndsWithTheRequest(t *testing.T) {
	release := make(chan struct{})
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	p := New(Options{})
	defer p.Close()
	defer close(release)
	var waited atomic.Int32
	left := make(chan struct{}, 1)
	g := p.Group("demo/api:80", Limits{MaxConns: 1, MaxRequestsPerConn: 1}, queueFunc(func() (func(), error) {
		waited.Add(1)
		return func() { left <- struct{}{} }, nil
	}))
	go groupGet(g, addr)
	waitFor(t, "the first connection", func() bool { return g.Conns() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if _, err := g.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request whose deadline passed while it waited = %v, want DeadlineExceeded", err)
	}
	select {
	case <-left:
	case <-time.After(time.Second):
		t.Fatal("the request never left the queue")
	}
	if waited.Load() != 1 {
		t.Fatalf("%d requests entered the queue, want 1", waited.Load())
	}
}
