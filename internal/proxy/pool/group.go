package pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

//lint:file-ignore SA1019 groups need http2.ClientConn.Shutdown and ConnPool, as pool.go says

// A Group is a set of connections kept apart from the ones the pool
// shares among everything it carries, under bounds of their own. A
// destination whose circuit breaker bounds its connections gets one, so
// that the bound counts that destination's connections and nothing else.
// Each connection still goes to one peer proxy and carries requests as
// HTTP/2 streams, many at once; a tunnel has a connection of its own
// (DialTunnel).
//
// A group lives while each config asks for it (Pool.Group): Retain
// retires those no Group call asked for since the Retain before, and a
// request a retired group still gets goes on the shared connections.
type Group struct {
	p    *Pool
	name string
	t    *http2.Transport

	mu     sync.Mutex
	limits Limits
	queue  Queue
	// conns are the group's connections whose TCP connection is open,
	// retiring ones included: they all count against MaxConns.
	conns []*groupConn
	// dials in progress to each peer that requests may share; opening
	// counts every dial in progress, a request's own ones included.
	dials   map[string][]*groupDial
	opening int
	// waiting requests watch freed, which is closed (and replaced) when a
	// connection closes, gets room or is dialed, or the limits change.
	waiting int
	freed   chan struct{}
	retired bool

	// used says a Group call asked for the group since the last Retain;
	// guarded by p.mu.
	used bool
}

// Limits bound a Group's connections.
type Limits struct {
	// MaxConns bounds the group's connections to all its peers together,
	// those being dialed and those finishing their requests included; 0
	// is no bound.
	MaxConns uint32
	// MaxRequestsPerConn retires a connection once it has been given that
	// many requests: it takes no more, finishes those it has and closes.
	// 0 is no bound.
	MaxRequestsPerConn uint32
}

// Queue decides whether a request may wait for a connection of a group
// whose MaxConns are all open and busy.
type Queue interface {
	// Wait admits a request to wait, or refuses it with an error that the
	// request then fails with, wrapped in ErrConnLimit. leave ends the
	// wait; the request's context bounds it.
	Wait() (leave func(), err error)
}

// ErrConnLimit is a request that needed a new connection of a group
// whose MaxConns were all open and busy, and could not wait for one.
var ErrConnLimit = errors.New("pool: connection limit reached")

// errGroupRetired is GetClientConn's answer in a retired group; the
// request then goes on the shared connections.
var errGroupRetired = errors.New("pool: connection group retired")

// groupConn is one connection of a group; guarded by the group's mu.
type groupConn struct {
	cc *http2.ClientConn
	// tunnel is the connection of a tunnel, which has no cc: it counts
	// against MaxConns, as one request, until its owner closes it.
	tunnel net.Conn
	addr   string
	// served counts the requests given the connection; active, those of
	// them whose exchange has not ended (the answer read or abandoned).
	served uint32
	active int
	// promised counts the requests that waited for its dial and have not
	// come for it yet: they have first call on its requests, and an idle
	// connection with some is not reclaimed.
	promised int
	// retiring connections take no new requests; one is shut down once
	// its active requests are over. closed: its TCP connection closed.
	retiring, shut, closed bool
}

// groupDial is a dial in progress. seats is how many more requests may
// count on its connection (-1: any number); holders, how many do.
type groupDial struct {
	done    chan struct{}
	err     error
	gc      *groupConn
	seats   int
	holders int
}

// note follows one request through the transport's calls to
// GetClientConn: took lists the connections it was given, the last one
// carrying its answer.
type note struct {
	took []*groupConn
}

type noteKey struct{}

// Group returns the group called name, with limits l and queue q,
// making it when there is none, and marks it asked for (see Retain).
func (p *Pool) Group(name string, l Limits, q Queue) *Group {
	p.mu.Lock()
	defer p.mu.Unlock()
	g := p.groups[name]
	if g == nil {
		g = &Group{p: p, name: name, dials: map[string][]*groupDial{}, freed: make(chan struct{}), retired: p.closed}
		g.t = newTransport((*groupPool)(g))
		if !p.closed {
			p.groups[name] = g
		}
	}
	g.used = true
	g.configure(l, q)
	return g
}

func (g *Group) configure(l Limits, q Queue) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.limits, g.queue = l, q
	for _, gc := range g.conns {
		if l.MaxRequestsPerConn > 0 && gc.served >= l.MaxRequestsPerConn {
			g.retireConnLocked(gc)
		}
	}
	g.broadcastLocked()
}

// RoundTrip sends req to the peer proxy named by req.URL.Host on a
// connection of the group.
func (g *Group) RoundTrip(req *http.Request) (*http.Response, error) {
	n := &note{}
	resp, err := g.t.RoundTrip(req.WithContext(context.WithValue(req.Context(), noteKey{}, n)))
	var last *groupConn
	if err == nil && len(n.took) > 0 {
		// The transport asks again when a connection fails a request
		// before sending it: only the last one carries the answer.
		last, n.took = n.took[len(n.took)-1], n.took[:len(n.took)-1]
	}
	for _, gc := range n.took {
		g.release(gc)
	}
	switch {
	case errors.Is(err, errGroupRetired):
		// The config that wanted the group is gone; the request goes
		// where it would go now.
		req, err := rewound(req)
		if err != nil {
			return nil, err
		}
		return g.p.RoundTrip(req)
	case errors.Is(err, errRetired):
		return g.p.roundTripAlone(req)
	case err != nil:
		return nil, err
	}
	if last != nil {
		resp.Body = &releaseBody{ReadCloser: resp.Body, release: func() { g.release(last) }}
	}
	resp.Request = req
	return resp, nil
}

// releaseBody ends a request's hold on its connection when its answer
// has been read to the end or closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.release)
	}
	return n, err
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// release ends one request on gc: a retiring connection with none left
// is shut down, and waiters hear of the room.
func (g *Group) release(gc *groupConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gc.active--
	if gc.retiring && gc.active == 0 {
		g.shutLocked(gc)
	}
	g.broadcastLocked()
}

// groupPool is the http2.ClientConnPool face of Group, kept off its
// method set.
type groupPool Group

var _ http2.ClientConnPool = (*groupPool)(nil)

// maxUnusable bounds the fresh connections one request finds unusable
// at once before it fails, so that a peer that accepts and drops every
// connection fails requests rather than spinning.
const maxUnusable = 3

// GetClientConn returns a connection to addr with a stream reserved for
// req: one the group has with room, else a new one while the group is
// under MaxConns, else, once req's Queue lets it wait, the first that
// frees up.
func (gp *groupPool) GetClientConn(req *http.Request, addr string) (*http2.ClientConn, error) {
	g := (*Group)(gp)
	n, ok := req.Context().Value(noteKey{}).(*note)
	if !ok {
		return nil, errors.New("pool: group transport used outside Group.RoundTrip")
	}
	ctx := req.Context()
	var leave func()
	// promise is a connection dialed for this request, which an idle
	// reclaim leaves alone until the request has come for it.
	var promise *groupConn
	defer func() {
		if leave != nil {
			leave()
		}
		g.dropPromise(&promise)
	}()
	unusable := 0
	for unusable < maxUnusable {
		if !g.p.keeps(addr) {
			return nil, errRetired
		}
		g.mu.Lock()
		if g.retired {
			g.mu.Unlock()
			return nil, errGroupRetired
		}
		if gc := g.reserveLocked(addr, &promise); gc != nil {
			n.took = append(n.took, gc)
			g.mu.Unlock()
			return gc.cc, nil
		}
		// A dial in progress with a seat for the request, else a new one
		// while the group has room, else a wait for room.
		d, fresh := g.joinDialLocked(addr), false
		if d == nil && g.roomLocked() {
			d, fresh = g.newDialLocked(addr), true
		}
		if d == nil {
			if err := g.awaitRoomLocked(ctx, addr, &leave); err != nil {
				return nil, err
			}
			continue
		}
		g.mu.Unlock()
		if fresh {
			go g.dialShared(addr, d)
		}
		g.dropPromise(&promise)
		gc, err := g.waitDial(ctx, d, addr)
		if err != nil {
			return nil, err
		}
		promise = gc
		if g.unusable(gc) {
			unusable++
		}
	}
	return nil, &DialError{Addr: addr, Err: errors.New("new connections are unusable at once")}
}

// DialTunnel opens a connection of the group's own to the peer proxy at
// addr for one tunnel (see Pool.DialTunnel), counted against MaxConns
// until it is closed. When every connection the group may have is open,
// it waits for one as a request does, if the queue lets it. In a retired
// group it opens one as the pool does.
func (g *Group) DialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	var leave func()
	defer func() {
		if leave != nil {
			leave()
		}
	}()
	for {
		g.mu.Lock()
		if g.retired {
			g.mu.Unlock()
			return g.p.DialTunnel(ctx, addr)
		}
		if g.roomLocked() {
			g.opening++
			g.mu.Unlock()
			return g.dialTunnel(ctx, addr)
		}
		if err := g.awaitRoomLocked(ctx, addr, &leave); err != nil {
			return nil, err
		}
	}
}

func (g *Group) dialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	c, err := g.p.DialTunnel(ctx, addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opening--
	defer g.broadcastLocked()
	if err != nil {
		return nil, err
	}
	// Retiring with one active request: it takes no requests and is
	// never shut down by the group, only closed by its owner (or close).
	gc := &groupConn{addr: addr, retiring: true, served: 1, active: 1}
	gc.tunnel = watchClose(c, func() { g.connClosed(gc) })
	g.addLocked(gc)
	return gc.tunnel, nil
}

// roomLocked reports whether the group may open one more connection.
func (g *Group) roomLocked() bool {
	max := g.limits.MaxConns
	return max == 0 || len(g.conns)+g.opening < int(max)
}

// awaitRoomLocked is for a caller that found every connection the group
// may have open. An idle one can make room at once; else the caller
// waits for one to free up, once its queue lets it (*leave then ends its
// place in the queue). It is called with g.mu held and returns with it
// released; nil means look again, as the connections may have changed.
func (g *Group) awaitRoomLocked(ctx context.Context, addr string, leave *func()) error {
	soon := g.reclaimLocked()
	if !soon && *leave == nil {
		g.mu.Unlock()
		if g.queue == nil {
			return fmt.Errorf("%w: %d connections of %s open", ErrConnLimit, g.limits.MaxConns, g.name)
		}
		l, err := g.queue.Wait()
		if err != nil {
			return fmt.Errorf("%w: %d connections of %s open: %w", ErrConnLimit, g.limits.MaxConns, g.name, err)
		}
		*leave = l
		return nil
	}
	freed := g.freed
	g.waiting++
	g.mu.Unlock()
	select {
	case <-freed:
	case <-ctx.Done():
	}
	g.mu.Lock()
	g.waiting--
	g.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("waiting for a connection of %s to peer proxy %s: %w", g.name, addr, err)
	}
	return nil
}

// dropPromise ends the hold of a request on the connection *gc dialed
// for it, if any.
func (g *Group) dropPromise(gc **groupConn) {
	if *gc == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	(*gc).promised--
	*gc = nil
}

// reserveLocked reserves a stream on a connection to addr that takes
// requests and has room: room left by the requests it was dialed for,
// unless it was dialed for this one (*mine), whose hold it then ends.
func (g *Group) reserveLocked(addr string, mine **groupConn) *groupConn {
	m := g.limits.MaxRequestsPerConn
	conns := g.conns
	if *mine != nil {
		// Its own first, or it would stay idle.
		conns = append([]*groupConn{*mine}, conns...)
	}
	for _, gc := range conns {
		if gc.addr != addr || gc.retiring || gc.closed {
			continue
		}
		if m > 0 && gc != *mine && gc.served+uint32(gc.promised) >= m {
			continue
		}
		if st := gc.cc.State(); st.Closed || st.Closing {
			// Broken, or the peer sent GOAWAY: it takes no more.
			g.retireConnLocked(gc)
			continue
		}
		if !gc.cc.ReserveNewRequest() {
			continue // full: as many streams as the peer allows
		}
		gc.served++
		gc.active++
		if gc == *mine {
			gc.promised--
			*mine = nil
		}
		if m > 0 && gc.served >= m {
			gc.retiring = true
		}
		return gc
	}
	return nil
}

// newDialLocked counts a new dial to addr, which the request it is for
// holds a seat in, and which requests may share while it has seats.
func (g *Group) newDialLocked(addr string) *groupDial {
	g.opening++
	d := &groupDial{done: make(chan struct{}), seats: -1, holders: 1}
	if m := g.limits.MaxRequestsPerConn; m > 0 {
		d.seats = int(m) - 1 // one for this request
	}
	g.dials[addr] = append(g.dials[addr], d)
	return d
}

// joinDialLocked returns a dial in progress to addr whose connection
// can take one more request, counting on a seat in it.
func (g *Group) joinDialLocked(addr string) *groupDial {
	for _, d := range g.dials[addr] {
		if d.seats != 0 {
			if d.seats > 0 {
				d.seats--
			}
			return d
		}
	}
	return nil
}

// unusable reports whether a connection just dialed could take no
// request at all: it closed or refused before serving one.
func (g *Group) unusable(gc *groupConn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return gc == nil || gc.served == 0 && (gc.closed || gc.retiring)
}

// reclaimLocked makes room when every connection the group may have is
// open: it retires an idle connection, whose close frees a place. It
// reports whether a place is about to free up, without waiting on any
// request.
func (g *Group) reclaimLocked() bool {
	for _, gc := range g.conns {
		if gc.retiring && gc.active == 0 {
			return true // shutting down already
		}
	}
	for _, gc := range g.conns {
		if gc.active == 0 && gc.promised == 0 {
			g.retireConnLocked(gc)
			return true
		}
	}
	return false
}

// waitDial waits for d, which counts the request among its holders, and
// returns its connection, on which the request then holds a promise.
func (g *Group) waitDial(ctx context.Context, d *groupDial, addr string) (*groupConn, error) {
	var err error
	select {
	case <-d.done:
		if d.err == nil {
			return d.gc, nil
		}
		err = d.err
	case <-ctx.Done():
		err = fmt.Errorf("waiting for a connection to peer proxy %s: %w", addr, ctx.Err())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-d.done: // its connection, if any, counts on this request
		if d.gc != nil {
			d.gc.promised--
		}
	default:
		d.holders--
	}
	return nil, err
}

// dialShared dials a connection to addr that the requests counting on d
// share; neither of them cancels it.
func (g *Group) dialShared(addr string, d *groupDial) {
	defer close(d.done)
	gc := &groupConn{addr: addr}
	cc, err := g.p.connectWith(g.p.ctx, g.t, addr, func() { g.connClosed(gc) })
	g.mu.Lock()
	defer g.mu.Unlock()
	g.opening--
	list := g.dials[addr]
	for i, x := range list {
		if x == d {
			g.dials[addr] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(g.dials[addr]) == 0 {
		delete(g.dials, addr)
	}
	defer g.broadcastLocked()
	if err != nil {
		d.err = err
		g.p.log.Warn("cannot connect to peer proxy", "peer", addr, "group", g.name, "error", err)
		return
	}
	gc.cc = cc
	gc.promised = d.holders
	d.gc = gc
	g.addLocked(gc)
	if g.retired {
		d.err = errGroupRetired
	}
}

// addLocked lists a connection just dialed, unless it has closed
// already; in a retired group it is shut down at once.
func (g *Group) addLocked(gc *groupConn) {
	if gc.closed {
		return
	}
	g.conns = append(g.conns, gc)
	if g.retired {
		g.retireConnLocked(gc)
	}
}

// connClosed forgets a connection whose TCP connection closed, which
// frees its place.
func (g *Group) connClosed(gc *groupConn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	gc.closed = true
	for i, x := range g.conns {
		if x == gc {
			g.conns = append(g.conns[:i:i], g.conns[i+1:]...)
			break
		}
	}
	g.broadcastLocked()
}

// retireConnLocked stops giving gc requests, and shuts it down when it
// has none left.
func (g *Group) retireConnLocked(gc *groupConn) {
	gc.retiring = true
	if gc.active == 0 {
		g.shutLocked(gc)
	}
}

// shutLocked closes gc gracefully: its streams finish first.
func (g *Group) shutLocked(gc *groupConn) {
	if gc.shut {
		return
	}
	gc.shut = true
	gc.retiring = true
	g.p.retire(gc.cc)
}

func (g *Group) broadcastLocked() {
	if g.waiting > 0 {
		close(g.freed)
		g.freed = make(chan struct{})
	}
}

// retire retires the group's connections to peers not in keep (all of
// them when keep is nil, and the group with them).
func (g *Group) retire(keep map[string]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if keep == nil {
		g.retired = true
	}
	for _, gc := range g.conns {
		if keep == nil || !keep[gc.addr] {
			g.retireConnLocked(gc)
		}
	}
	g.broadcastLocked()
}

// close closes every connection of the group at once.
func (g *Group) close() {
	g.mu.Lock()
	g.retired = true
	conns := g.conns
	g.broadcastLocked()
	g.mu.Unlock()
	for _, gc := range conns {
		if gc.tunnel != nil {
			gc.tunnel.Close()
			continue
		}
		gc.cc.Close()
	}
}

// peers counts the group's open connections by peer.
func (g *Group) peers() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for _, gc := range g.conns {
		out[gc.addr]++
	}
	return out
}

// Conns reports how many connections the group has open or being
// dialed: what counts against MaxConns.
func (g *Group) Conns() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.conns) + g.opening
}

// rewound returns req ready to be sent again: the transport may have
// sent part of a body it can rewind.
func rewound(req *http.Request) (*http.Request, error) {
	if req.GetBody == nil || req.Body == nil || req.Body == http.NoBody {
		return req, nil
	}
	body, err := req.GetBody()
	if err != nil {
		return nil, fmt.Errorf("rewind request body for peer proxy %s: %w", req.URL.Host, err)
	}
	req = req.Clone(req.Context())
	req.Body = body
	return req, nil
}

// closeWatch calls onClose, once, when its connection has been closed,
// whoever closed it: http2 closes connections on its own, on errors, on
// GOAWAY and when idle, and a group counts them until they are gone.
type closeWatch struct {
	net.Conn
	once    sync.Once
	onClose func()
}

// closeWatchTLS keeps the TLS connection state visible to http2.
type closeWatchTLS struct{ *closeWatch }

func (c closeWatchTLS) ConnectionState() tls.ConnectionState {
	return c.Conn.(interface{ ConnectionState() tls.ConnectionState }).ConnectionState()
}

func watchClose(c net.Conn, onClose func()) net.Conn {
	w := &closeWatch{Conn: c, onClose: onClose}
	if _, ok := c.(interface{ ConnectionState() tls.ConnectionState }); ok {
		return closeWatchTLS{w}
	}
	return w
}

// CloseWrite half-closes the connection when it can (a tunnel's).
func (c *closeWatch) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("pool: %T cannot half-close: %w", c.Conn, errors.ErrUnsupported)
}

func (c *closeWatch) Close() error {
	if tc, ok := c.Conn.(*tls.Conn); ok {
		// http2 bounds the close of a *tls.Conn, which can hang on a peer
		// that stopped reading; it no longer sees one here.
		t := time.AfterFunc(250*time.Millisecond, func() { tc.NetConn().Close() })
		defer t.Stop()
	}
	err := c.Conn.Close()
	// Not here: http2 may close the connection in the middle of work on
	// the group's connections, and onClose takes the group's lock.
	c.once.Do(func() { go c.onClose() })
	return err
}

// MarkDead retires a connection the transport found broken, or that its
// peer sent GOAWAY on; the group counts it until it has closed.
func (gp *groupPool) MarkDead(cc *http2.ClientConn) {
	g := (*Group)(gp)
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, gc := range g.conns {
		if gc.cc == cc {
			g.retireConnLocked(gc)
			return
		}
	}
}
