package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/testutil/dialcount"
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
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

func TestGroupGivesEachTunnelAConnection(t *testing.T) {
	// The peer echoes each connection until the tunnel half-closes it.
	addr := tcpserver.Serve(t, func(c *net.TCPConn) { io.Copy(c, c) }).String()
	d := &dialcount.Dialer{}
	p := New(Options{Dialer: d})
	defer p.Close()
	var waited atomic.Int32
	g := p.Group("demo/db:5432", Limits{MaxConns: 2}, queueFunc(func() (func(), error) {
		waited.Add(1)
		return func() {}, nil
	}))
	// open dials a tunnel and checks an echo through it; it may run in
	// another goroutine, so it reports rather than fails.
	open := func() (net.Conn, error) {
		c, err := g.DialTunnel(context.Background(), addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			return c, err
		}
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			return c, fmt.Errorf("echo through the tunnel's connection = %q, %v", b, err)
		}
		return c, nil
	}
	mustOpen := func() net.Conn {
		t.Helper()
		c, err := open()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c1 := mustOpen()
	c2 := mustOpen()
	if dials, _, _ := d.Counts(); dials != 2 {
		t.Fatalf("two tunnels dialed %d connections, want 2", dials)
	}
	// A request finds the group full too: tunnels count against MaxConns.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if _, err := g.RoundTrip(req); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a request with two tunnels open = %v, want to wait until its deadline", err)
	}
	// A third tunnel waits for a place, and the first one's close gives it.
	type opened struct {
		c   net.Conn
		err error
	}
	third := make(chan opened, 1)
	go func() {
		c, err := open()
		third <- opened{c, err}
	}()
	waitFor(t, "the third tunnel queued", func() bool { return waited.Load() == 2 })
	select {
	case <-third:
		t.Fatal("a third tunnel opened with two open and MaxConns 2")
	case <-time.After(50 * time.Millisecond):
	}
	c1.Close()
	var c3 net.Conn
	select {
	case o := <-third:
		if o.err != nil {
			t.Fatalf("the third tunnel: %v", o.err)
		}
		c3 = o.c
	case <-time.After(5 * time.Second):
		t.Fatal("the third tunnel never got the first one's place")
	}
	// A tunnel half-closes: the peer's copy ends, and it closes.
	if err := c2.(interface{ CloseWrite() error }).CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	if n, err := c2.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after half-close = %d, %v; want EOF from the peer", n, err)
	}
	c2.Close()
	c3.Close()
	waitFor(t, "every connection closed", func() bool { _, live, _ := d.Counts(); return live == 0 && g.Conns() == 0 })
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
