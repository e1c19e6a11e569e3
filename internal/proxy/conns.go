package proxy

import (
	"context"
	"net"
	"sync"
	"time"
)

// connQueue is a net.Listener fed by hand: the outbound accept loop puts
// connections it found to be HTTP here, and an http.Server serves them.
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }

// deliver hands c to the server; false when the server is gone.
func (q *connQueue) deliver(c net.Conn) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
		return false
	}
}

// tracker holds the connections no http.Server accounts for (opaque TCP,
// hijacked upgrades, connections still being detected) so Shutdown can
// wait for them and, at the deadline, close them.
type tracker struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// add registers c; false once closeAll ran, and the caller must close c.
func (t *tracker) add(c net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.conns[c] = struct{}{}
	return true
}

// accepting reports whether add would still take a connection.
func (t *tracker) accepting() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return !t.closed
}

func (t *tracker) done(c net.Conn) {
	t.mu.Lock()
	delete(t.conns, c)
	t.mu.Unlock()
}

func (t *tracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// wait returns when no connection is left or ctx ends. It polls, as
// http.Server.Shutdown does: shutdown is rare and a few ms don't matter.
func (t *tracker) wait(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for t.count() > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// closeAll closes every connection left and refuses new ones; it returns
// how many it closed.
func (t *tracker) closeAll() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	for c := range t.conns {
		c.Close()
	}
	return len(t.conns)
}
