// Package dialcount is a net.Dialer for tests that counts the connections
// it opened: in all, open now, and the most open at once, which is how
// tests see a bound on connections hold.
//
// For tests only; it imports nothing of weft.
package dialcount

import (
	"context"
	"net"
	"sync"
)

// Dialer dials like net.Dialer and counts.
type Dialer struct {
	net.Dialer
	mu                sync.Mutex
	dials, live, peak int
}

// DialContext dials and counts the connection until it is closed.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := d.Dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dials++
	d.live++
	d.peak = max(d.peak, d.live)
	return &conn{Conn: c, d: d}, nil
}

// Counts returns the connections dialed, open now, and most open at once.
func (d *Dialer) Counts() (dials, live, peak int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dials, d.live, d.peak
}

type conn struct {
	net.Conn
	d    *Dialer
	once sync.Once
}

// Close counts the connection closed once, however often it is called.
func (c *conn) Close() error {
	c.once.Do(func() {
		c.d.mu.Lock()
		c.d.live--
		c.d.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite half-closes the connection, as a *net.TCPConn does, so that
// tunnels over counted connections keep their half-close.
func (c *conn) CloseWrite() error {
	return c.Conn.(interface{ CloseWrite() error }).CloseWrite()
}
