package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// x/net/http2's client is deprecated in favour of net/http's, whose
// ClientConn has no graceful Shutdown and no retry of requests a GOAWAY
// refused; this pool needs both to retire one peer's connections without
// failing requests. x/net keeps the API working on top of net/http from Go
// 1.27; revisit then.

//lint:file-ignore SA1019 the pool needs http2.ClientConn.Shutdown and ConnPool, see above

// Dialer opens a connection to a peer proxy. *net.Dialer is one.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// TunnelDialer is a Dialer that opens the connections tunnels go on
// (see Pool.DialTunnel) differently; the mTLS dialer offers them another
// application protocol. A Dialer that is not one opens tunnels' connections
// as it opens the others.
type TunnelDialer interface {
	DialTunnel(ctx context.Context, addr string) (net.Conn, error)
}

// DialError is a failure to reach a peer proxy at all, as opposed to a
// failure of a request on an established connection. Callers answer it
// with 502.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return "connect to peer proxy " + e.Addr + ": " + e.Err.Error() }
func (e *DialError) Unwrap() error { return e.Err }

// ErrClosed is returned for requests made after Close.
var ErrClosed = errors.New("pool: closed")

// errRetired is GetClientConn's answer for a peer the last Retain did not
// keep; RoundTrip then carries the request on a connection of its own.
var errRetired = errors.New("pool: peer proxy retired")

// Options configure a Pool.
type Options struct {
	// Dialer opens connections; nil is plain TCP.
	Dialer Dialer
	// DialTimeout bounds one dial; zero is 5s.
	DialTimeout time.Duration
	Logger      *slog.Logger
}

// Pool is an http.RoundTripper to peer proxies: the request's URL.Host
// names the peer. It keeps its own connections per peer, rather than using
// http2.Transport's built-in pool, so that a peer leaving the mesh can
// have exactly its connections retired.
type Pool struct {
	t      *http2.Transport
	dialer Dialer
	log    *slog.Logger
	dialTO time.Duration

	ctx    context.Context // canceled by Close: ends dials and retirements
	cancel context.CancelFunc

	mu    sync.Mutex
	peers map[string]*peer
	// keep is the set the last Retain kept, nil before any: only these
	// peers get pooled connections. Entries in peers are always in it.
	keep map[string]bool
	// groups by name; see Group.
	groups map[string]*Group
	closed bool
}

type peer struct {
	conns []*http2.ClientConn
	dial  *dialCall // in progress, shared by every request waiting on it
}

type dialCall struct {
	done chan struct{}
	err  error
}

var _ http.RoundTripper = (*Pool)(nil)

// New makes an empty pool.
func New(opts Options) *Pool {
	p := &Pool{
		dialer: opts.Dialer,
		log:    opts.Logger,
		dialTO: opts.DialTimeout,
		peers:  map[string]*peer{},
		groups: map[string]*Group{},
	}
	if p.dialer == nil {
		p.dialer = &net.Dialer{KeepAlive: 30 * time.Second}
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	if p.dialTO == 0 {
		p.dialTO = 5 * time.Second
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.t = newTransport((*connPool)(p))
	return p
}

// RoundTrip sends req to the peer proxy named by req.URL.Host, whose
// scheme must be "http".
func (p *Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := p.t.RoundTrip(req)
	if errors.Is(err, errRetired) {
		return p.roundTripAlone(req)
	}
	return resp, err
}

// roundTripAlone carries req to a retired peer on a connection of its own
// that closes when the exchange ends. The request was bound to the peer
// before it left the config and may still complete, but a pooled
// connection would stay open to a peer nothing else will use.
func (p *Pool) roundTripAlone(req *http.Request) (*http.Response, error) {
	addr := req.URL.Host
	p.log.Debug("peer proxy retired; request goes on a connection of its own", "peer", addr)
	// The transport asks for a connection before it sends anything, but
	// when retrying it may have sent part of a body it can rewind.
	if req.GetBody != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("rewind request body for peer proxy %s: %w", addr, err)
		}
		req = req.Clone(req.Context())
		req.Body = body
	}
	cc, err := p.connect(addr)
	if err != nil {
		return nil, err
	}
	resp, err := cc.RoundTrip(req)
	p.retire(cc)
	return resp, err
}

// DialTunnel opens a connection to the peer proxy at addr for one tunnel.
// It is the caller's alone: it is not pooled, Retain does not touch it,
// and it lives until the caller closes it. A tunnel carries a byte stream
// for as long as its ends want, so multiplexing it with requests would buy
// one handshake and cost HTTP/2's framing and flow control on every byte.
func (p *Pool) DialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTO)
	defer cancel()
	var c net.Conn
	var err error
	if td, ok := p.dialer.(TunnelDialer); ok {
		c, err = td.DialTunnel(ctx, addr)
	} else {
		c, err = p.dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	return c, nil
}

// retire closes cc once its streams have ended, or at once on Close.
func (p *Pool) retire(cc *http2.ClientConn) {
	go func() {
		if err := cc.Shutdown(p.ctx); err != nil {
			cc.Close()
		}
	}()
}

// Retain retires the connections to every peer not in keep: they take no
// new requests, close at once when idle, and otherwise when their last
// stream ends. Until a later Retain keeps such a peer again, a request to
// it gets a connection of its own, closed when the request ends.
//
// Retain also ends a generation of groups: a group that no Group call
// asked for since the Retain before is retired whole, the same way.
func (p *Pool) Retain(keep map[string]bool) {
	p.mu.Lock()
	p.keep = make(map[string]bool, len(keep))
	maps.Copy(p.keep, keep)
	var retired []*http2.ClientConn
	for addr, pe := range p.peers {
		if keep[addr] {
			continue
		}
		retired = append(retired, pe.conns...)
		delete(p.peers, addr)
		p.log.Debug("retiring connections to peer proxy", "peer", addr, "conns", len(pe.conns))
	}
	var stale, kept []*Group
	for name, g := range p.groups {
		if !g.used {
			stale = append(stale, g)
			delete(p.groups, name)
			continue
		}
		g.used = false
		kept = append(kept, g)
	}
	p.mu.Unlock()
	for _, cc := range retired {
		p.retire(cc)
	}
	for _, g := range stale {
		p.log.Debug("retiring connection group", "group", g.name)
		g.retire(nil)
	}
	for _, g := range kept {
		g.retire(keep)
	}
}

// keeps reports whether the last Retain kept peer addr.
func (p *Pool) keeps(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keep == nil || p.keep[addr]
}

// Peers reports how many connections the pool holds to each peer, its
// groups' included.
func (p *Pool) Peers() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.peers))
	for addr, pe := range p.peers {
		out[addr] = len(pe.conns)
	}
	for _, g := range p.groups {
		for addr, n := range g.peers() {
			out[addr] += n
		}
	}
	return out
}

// Close closes every connection at once, interrupting requests in flight.
// Drain callers first.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	peers, groups := p.peers, p.groups
	p.peers, p.groups = map[string]*peer{}, map[string]*Group{}
	p.mu.Unlock()
	p.cancel()
	for _, pe := range peers {
		for _, cc := range pe.conns {
			cc.Close()
		}
	}
	for _, g := range groups {
		g.close()
	}
	return nil
}

// connPool is the http2.ClientConnPool face of Pool, kept off Pool's own
// method set.
type connPool Pool

var _ http2.ClientConnPool = (*connPool)(nil)

// GetClientConn returns a connection to addr with a stream reserved,
// dialing when no connection has room. Concurrent callers share one dial.
func (cp *connPool) GetClientConn(req *http.Request, addr string) (*http2.ClientConn, error) {
	p := (*Pool)(cp)
	// A fresh connection is normally usable at once; bound the loop so a
	// peer that accepts and immediately drops connections fails the request
	// rather than spinning.
	for range 3 {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrClosed
		}
		pe := p.peers[addr]
		if pe == nil {
			if p.keep != nil && !p.keep[addr] {
				p.mu.Unlock()
				return nil, errRetired
			}
			pe = &peer{}
			p.peers[addr] = pe
		}
		if cc := pe.reserve(); cc != nil {
			p.mu.Unlock()
			return cc, nil
		}
		d := pe.dial
		if d == nil {
			d = &dialCall{done: make(chan struct{})}
			pe.dial = d
			go p.dial(addr, d)
		}
		p.mu.Unlock()
		select {
		case <-d.done:
			if d.err != nil {
				return nil, d.err
			}
		case <-req.Context().Done():
			return nil, fmt.Errorf("waiting for a connection to peer proxy %s: %w", addr, req.Context().Err())
		}
	}
	return nil, &DialError{Addr: addr, Err: errors.New("new connections are unusable at once")}
}

// reserve drops connections that can take no more requests (closed,
// or shutting down after a GOAWAY: they finish their streams on their own)
// and reserves a stream on the first with room.
func (pe *peer) reserve() *http2.ClientConn {
	live := pe.conns[:0]
	var got *http2.ClientConn
	for _, cc := range pe.conns {
		if st := cc.State(); st.Closed || st.Closing {
			continue
		}
		live = append(live, cc)
		if got == nil && cc.ReserveNewRequest() {
			got = cc
		}
	}
	clear(pe.conns[len(live):])
	pe.conns = live
	return got
}

func (p *Pool) dial(addr string, d *dialCall) {
	defer close(d.done)
	cc, err := p.connect(addr)
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.peers[addr]
	if pe != nil && pe.dial == d {
		pe.dial = nil
	}
	switch {
	case err != nil:
		d.err = err
		p.log.Warn("cannot connect to peer proxy", "peer", addr, "error", err)
	case p.closed:
		cc.Close()
		d.err = ErrClosed
	case pe == nil:
		// Retain retired the peer while we dialed. Pooled, the connection
		// would stay open to it until the next Retain; the requests waiting
		// go on connections of their own instead.
		cc.Close()
		d.err = errRetired
	default:
		pe.conns = append(pe.conns, cc)
	}
}

func (p *Pool) connect(addr string) (*http2.ClientConn, error) {
	return p.connectWith(p.ctx, p.t, addr, nil)
}

// connectWith dials addr within ctx and the dial timeout, and starts
// HTTP/2 on the connection for transport t; onClose, when set, is called
// once the connection has closed.
func (p *Pool) connectWith(ctx context.Context, t *http2.Transport, addr string, onClose func()) (*http2.ClientConn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.dialTO)
	defer cancel()
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	if onClose != nil {
		c = watchClose(c, onClose)
	}
	cc, err := t.NewClientConn(c)
	if err != nil {
		c.Close()
		return nil, &DialError{Addr: addr, Err: fmt.Errorf("start HTTP/2: %w", err)}
	}
	return cc, nil
}

// newTransport is an HTTP/2 transport to peer proxies over the
// connections of cp.
func newTransport(cp http2.ClientConnPool) *http2.Transport {
	return &http2.Transport{
		AllowHTTP:          true,
		DisableCompression: true, // a proxy must not change what the app asked for
		ConnPool:           cp,
		// Health-check idle connections so a vanished peer is noticed
		// before a request waits on it.
		ReadIdleTimeout: 30 * time.Second,
		PingTimeout:     10 * time.Second,
		IdleConnTimeout: 5 * time.Minute,
	}
}

// MarkDead forgets a connection the transport found broken.
func (cp *connPool) MarkDead(cc *http2.ClientConn) {
	p := (*Pool)(cp)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pe := range p.peers {
		for i, c := range pe.conns {
			if c == cc {
				pe.conns = append(pe.conns[:i], pe.conns[i+1:]...)
				return
			}
		}
	}
}
