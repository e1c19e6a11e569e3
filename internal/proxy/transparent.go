package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/authz"
	"github.com/weftmesh/weft/internal/proxy/detect"
	"github.com/weftmesh/weft/internal/proxy/iptables"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tunnel"
)

// Transparent interception: the app opens connections to wherever it
// likes, and clients outside the mesh call the workload's ports, while
// `weft-proxy init`'s iptables rules redirect both to the proxy (see
// package iptables). The proxy asks each connection where it was going:
//
//   - Outbound, a service's cluster IP and one of its ports is carried
//     exactly as the explicit outbound port of that service would carry
//     it: protocol from the service port, else detected; HTTP balanced
//     request by request, the rest tunnelled. Any other destination passes
//     through untouched, as a plain TCP splice.
//   - Inbound, a connection to one of the workload's declared ports is a
//     plaintext client from outside the mesh: taken as the inbound
//     listener takes one (so a strict workload refuses it, and
//     authorization applies), then forwarded to the app on that port.
//
// The outbound path is keyed by local port (state.routes): each service
// port reachable by cluster IP gets a virtual local port above 65535, so
// no real port can collide with it, stable while the service is known,
// and Apply builds its route with the explicit ones. A connection is
// bound to its virtual port when it is accepted; its requests find the
// route in force each time, as those of an explicit port do.

// Transparent configures the listeners that take redirected connections.
type Transparent struct {
	// OutboundPort is where the app's connections are redirected; the
	// proxy listens on it on loopback (127.0.0.1, and ::1 where the host
	// has it).
	OutboundPort uint32
	// InboundPort is where connections arriving for the workload's ports
	// are redirected; the proxy listens on it on every address.
	InboundPort uint32
	// OriginalDst says where a redirected connection was going; nil is
	// iptables.OriginalDst (SO_ORIGINAL_DST). Another way of redirecting,
	// or a test, supplies its own.
	OriginalDst func(net.Conn) (netip.AddrPort, error)
}

// firstVirtualPort is the first virtual local port: above every real one.
const firstVirtualPort = 1 << 16

// transparent is the proxy's side of interception.
type transparent struct {
	opts    Transparent
	origDst func(net.Conn) (netip.AddrPort, error)

	// Under the Proxy's mu: the virtual local port of each service port
	// reachable by cluster IP, and the next one to hand out.
	vports map[target]uint32
	next   uint32
	// listeners are bound once, by the first Apply, and serve until
	// Shutdown; nil before.
	listeners *transparentListeners

	// table is where each cluster IP and port leads, for the config in
	// force.
	table atomic.Pointer[transparentTable]
	// dialing holds the local addresses of the connections the proxy is
	// passing through: one that comes back redirected means the rules do
	// not exempt the proxy's own traffic, and would loop forever.
	dialing sync.Map
}

// transparentTable maps destinations to virtual local ports.
type transparentTable struct {
	dst map[netip.AddrPort]uint32
	// ips are the cluster IPs of the services the proxy knows: a port they
	// do not serve goes nowhere, rather than out of the mesh.
	ips map[netip.Addr]model.Ref
	// vports and next replace the transparent's own once the config this
	// table was planned for is in force.
	vports map[target]uint32
	next   uint32
}

func newTransparent(opts *Transparent) *transparent {
	if opts == nil {
		return nil
	}
	t := &transparent{opts: *opts, origDst: opts.OriginalDst, vports: map[target]uint32{}, next: firstVirtualPort}
	if t.origDst == nil {
		t.origDst = iptables.OriginalDst
	}
	t.table.Store(&transparentTable{})
	return t
}

// plan returns the config to build the request path's state from: cfg
// with an outbound entry on a virtual local port for each port of each
// service with a cluster IP, and the table leading there. Services are
// those of cfg: the workload's outbound list and the backends of their
// routes, as the proxy subscribes to them. It must be called with p.mu
// held.
func (p *Proxy) plan(cfg *model.ProxyConfig) (*model.ProxyConfig, *transparentTable) {
	t := p.tr
	table := &transparentTable{dst: map[netip.AddrPort]uint32{}, ips: map[netip.Addr]model.Ref{}, vports: map[target]uint32{}, next: t.next}
	var extra []model.Outbound
	refs := slices.SortedFunc(maps.Keys(cfg.Services), func(a, b model.Ref) int { return cmp.Compare(a.String(), b.String()) })
	for _, ref := range refs {
		ss := cfg.Services[ref]
		if ss == nil || ss.Service == nil || len(ss.Service.ClusterIPs) == 0 {
			continue
		}
		var ips []netip.Addr
		for _, s := range ss.Service.ClusterIPs {
			ip, err := netip.ParseAddr(s)
			if err != nil {
				continue // the wire refuses these; never reached
			}
			if other, ok := table.ips[ip]; ok {
				p.log.Warn("two services claim one cluster IP; the first keeps it", "cluster_ip", s, "service", other.String(), "ignored", ref.String())
				continue
			}
			table.ips[ip] = ref
			ips = append(ips, ip)
		}
		for _, sp := range ss.Service.Ports {
			key := target{service: ref, port: sp.Port}
			vport, ok := t.vports[key]
			if !ok {
				vport = table.next
				table.next++
			}
			table.vports[key] = vport
			extra = append(extra, model.Outbound{Service: ref, Port: sp.Port, LocalPort: vport})
			for _, ip := range ips {
				table.dst[netip.AddrPortFrom(ip, uint16(sp.Port))] = vport
			}
		}
	}
	if len(extra) == 0 {
		return cfg, table
	}
	w := *cfg.Workload
	w.Outbound = slices.Concat(cfg.Workload.Outbound, extra)
	built := *cfg
	built.Workload = &w
	return &built, table
}

// commit puts in force the table of the config just stored. A service
// port no longer known loses its virtual port; if it comes back it gets a
// new one, so connections made before never reach it. It must be called
// with p.mu held.
func (t *transparent) commit(table *transparentTable) {
	t.vports, t.next = table.vports, table.next
	t.table.Store(table)
}

// transparentListeners are the sockets redirected connections arrive on,
// and the servers their HTTP connections are handed to.
type transparentListeners struct {
	out, in []net.Listener
	// outSrv and inSrv serve the connections found to be HTTP.
	outSrv, inSrv *server
	outQ, inQ     *connQueue
	loops         sync.WaitGroup
}

// bindTransparent binds the transparent listeners, the first time only;
// it returns nil when there is nothing new to start.
func (p *Proxy) bindTransparent() (*transparentListeners, error) {
	t := p.tr
	if t == nil || t.listeners != nil {
		return nil, nil
	}
	for _, port := range []struct {
		flag string
		v    uint32
	}{{"outbound", t.opts.OutboundPort}, {"inbound", t.opts.InboundPort}} {
		if port.v == 0 || port.v > 65535 {
			return nil, fmt.Errorf("transparent %s port %d: want 1..65535", port.flag, port.v)
		}
	}
	l := &transparentListeners{}
	var err error
	if l.out, err = listenFamilies(t.opts.OutboundPort, "127.0.0.1", "::1"); err != nil {
		return nil, fmt.Errorf("transparent outbound listener: %w", err)
	}
	if l.in, err = listenFamilies(t.opts.InboundPort, "0.0.0.0", "::"); err != nil {
		l.close()
		return nil, fmt.Errorf("transparent inbound listener: %w", err)
	}
	return l, nil
}

// listenFamilies listens on port at the IPv4 address, and at the IPv6 one
// unless the host has no IPv6. One socket per family: each connection's
// original destination is then asked in its own family.
func listenFamilies(port uint32, v4, v6 string) ([]net.Listener, error) {
	ln4, err := net.Listen("tcp4", model.HostPort(v4, port))
	if err != nil {
		return nil, err
	}
	ln6, err := net.Listen("tcp6", model.HostPort(v6, port))
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EAFNOSUPPORT):
		return []net.Listener{ln4}, nil
	case err != nil:
		ln4.Close()
		return nil, err
	}
	return []net.Listener{ln4, ln6}, nil
}

func (l *transparentListeners) close() {
	for _, ln := range slices.Concat(l.out, l.in) {
		ln.Close()
	}
}

// startTransparent serves l from now on.
func (p *Proxy) startTransparent(l *transparentListeners) {
	p.tr.listeners = l
	l.outQ, l.inQ = newConnQueue(l.out[0].Addr()), newConnQueue(l.in[0].Addr())
	// Each side's server takes the HTTP connections its accept loops found;
	// its drain waits for them to end.
	accepting := make(chan struct{})
	l.outSrv = p.transparentServer("outbound", l.outQ, accepting, p.observed(outbound, http.HandlerFunc(p.serveTransparentOutbound)))
	l.inSrv = p.transparentServer("inbound", l.inQ, accepting, p.observed(inbound, http.HandlerFunc(p.serveTransparentInbound)))
	for _, ln := range l.out {
		l.loops.Go(func() { p.acceptTransparent(ln, p.handleTransparentOutbound) })
	}
	for _, ln := range l.in {
		l.loops.Go(func() { p.acceptTransparent(ln, p.handleTransparentInbound) })
	}
	go func() {
		l.loops.Wait()
		close(accepting)
	}()
	for _, ln := range slices.Concat(l.out, l.in) {
		p.log.Info("transparent listening", "addr", ln.Addr().String())
	}
}

func (p *Proxy) transparentServer(role string, q *connQueue, accepting chan struct{}, h http.Handler) *server {
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	s := &server{role: "transparent " + role, addr: q.Addr().String(), accepting: accepting}
	s.srv = &http.Server{
		Handler:   h,
		Protocols: &protos,
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: 1000},
		// Each connection carries where it was going to its requests.
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if rc, ok := c.(*routedConn); ok {
				return context.WithValue(ctx, routedKey{}, rc)
			}
			return ctx
		},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          p.httpLog,
	}
	go func() {
		if err := s.srv.Serve(q); !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("transparent server failed", "role", role, "error", err)
		}
	}()
	return s
}

// closeTransparent stops accepting redirected connections and returns the
// servers to drain; Shutdown calls it.
func (p *Proxy) closeTransparent() []*server {
	if p.tr == nil || p.tr.listeners == nil {
		return nil
	}
	l := p.tr.listeners
	l.close()
	return []*server{l.outSrv, l.inSrv}
}

func (p *Proxy) acceptTransparent(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			p.log.Warn("transparent accept failed", "addr", ln.Addr().String(), "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !p.tunnels.add(c) {
			c.Close()
			continue
		}
		go func() {
			defer p.tunnels.done(c)
			handle(c)
		}()
	}
}

// routedConn is a redirected connection handed to a transparent server,
// with where it was going: the virtual local port of its service
// (outbound) or the workload port (inbound).
type routedConn struct {
	net.Conn
	port uint32
	dst  netip.AddrPort
}

// CloseWrite half-closes when the connection can; upgrades that take the
// connection over need it.
func (c *routedConn) CloseWrite() error { return asHalfCloser(c.Conn).CloseWrite() }

type routedKey struct{}

// originalDst is where c was going, IPv4 unmapped.
func (t *transparent) originalDst(c net.Conn) (netip.AddrPort, error) {
	dst, err := t.origDst(c)
	if err != nil {
		return dst, err
	}
	return netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port()), nil
}

// handleTransparentOutbound carries one connection the app opened: to a
// service when it went to a cluster IP, else untouched to where it went.
func (p *Proxy) handleTransparentOutbound(c net.Conn) {
	if _, loop := p.tr.dialing.Load(c.RemoteAddr().String()); loop {
		p.log.Error("the proxy's own connection came back redirected: the iptables rules must exempt the user the proxy runs as (weft-proxy init --proxy-uid)",
			"remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	dst, err := p.tr.originalDst(c)
	if err != nil {
		p.log.Warn("transparent outbound connection dropped", "reason", err.Error())
		c.Close()
		return
	}
	if dst.Addr().IsLoopback() && uint32(dst.Port()) == p.tr.opts.OutboundPort {
		// Not redirected: someone called the listener itself.
		p.log.Warn("transparent outbound connection dropped: it was not redirected", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	t := p.tr.table.Load()
	if vport, ok := t.dst[dst]; ok {
		p.carryTransparent(c, dst, vport)
		return
	}
	if svc, ok := t.ips[dst.Addr()]; ok {
		// The mesh's address: leaving the mesh with it would reach nothing,
		// or something else.
		p.log.Warn("transparent outbound connection dropped: the service has no such port",
			"service", svc.String(), "destination", dst.String())
		c.Close()
		return
	}
	p.passThrough(c, dst)
}

// carryTransparent settles the protocol of a connection to a service and
// serves it as HTTP or tunnels it, as handleOutboundConn does for an
// explicit port.
func (p *Proxy) carryTransparent(c net.Conn, dst netip.AddrPort, vport uint32) {
	rt := p.cur.Load().routes[vport]
	service := ""
	if rt != nil {
		service = rt.out.Service.String()
	}
	c = p.golden.connCounters(outbound, service).count(c)
	conn, isHTTP, err := p.settle(c, rt.protocol())
	if err != nil {
		p.log.Debug("transparent outbound detection failed", "destination", dst.String(), "error", err)
		c.Close()
		return
	}
	if isHTTP {
		if !p.tr.listeners.outQ.deliver(&routedConn{Conn: conn, port: vport, dst: dst}) {
			conn.Close()
		}
		return
	}
	p.tunnelTCP(&outboundListener{port: vport}, rt, conn)
}

// settle says whether c carries HTTP: by the declared protocol, else by
// its first bytes, which the returned connection replays.
func (p *Proxy) settle(c net.Conn, proto model.Protocol) (net.Conn, bool, error) {
	switch {
	case proto.IsHTTP():
		return c, true, nil
	case proto == model.ProtocolTCP:
		return c, false, nil
	}
	res, dc, err := detect.Detect(c, p.opts.DetectTimeout)
	if err != nil {
		return nil, false, err
	}
	return dc, res == detect.HTTP1 || res == detect.HTTP2, nil
}

// serveTransparentOutbound serves one request of a redirected HTTP
// connection as the explicit outbound port of its service would.
func (p *Proxy) serveTransparentOutbound(w http.ResponseWriter, r *http.Request) {
	rc := r.Context().Value(routedKey{}).(*routedConn)
	if p.cur.Load().routes[rc.port] == nil {
		p.refuse(w, r, http.StatusServiceUnavailable, "outbound", fmt.Sprintf("%s no longer leads to a service of the mesh", rc.dst))
		return
	}
	p.outboundHandler(rc.port).ServeHTTP(w, r)
}

// passThrough splices a connection to a destination outside the mesh,
// bytes untouched. The proxy's own connection is not redirected: the
// rules exempt its user.
func (p *Proxy) passThrough(c net.Conn, dst netip.AddrPort) {
	c = p.golden.connCounters(outbound, "").count(c)
	d := net.Dialer{Timeout: appDialTimeout}
	up, err := d.DialContext(p.ctx, "tcp", dst.String())
	if err != nil {
		p.log.Info("pass-through connection failed", "destination", dst.String(), "error", err)
		c.Close()
		return
	}
	local := up.LocalAddr().String()
	p.tr.dialing.Store(local, struct{}{})
	defer p.tr.dialing.Delete(local)
	p.log.Debug("passing through", "destination", dst.String(), "remote", c.RemoteAddr().String())
	if err := pipe(c, up); err != nil {
		p.log.Debug("pass-through connection ended", "destination", dst.String(), "error", err)
	}
}

// handleTransparentInbound takes one connection a client outside the mesh
// made to a workload port: refused unless the workload accepts plaintext
// and declares the port, then served as HTTP or spliced to the app.
func (p *Proxy) handleTransparentInbound(c net.Conn) {
	// Asked of the socket itself, before it is wrapped.
	dst, err := p.tr.originalDst(c)
	c = p.golden.connCounters(inbound, "").count(c)
	if err != nil {
		p.log.Warn("transparent inbound connection dropped", "reason", err.Error())
		c.Close()
		return
	}
	port := uint32(dst.Port())
	st := p.cur.Load()
	wl := st.cfg.Workload
	refuse := func(reason string) {
		p.log.Warn("transparent inbound connection refused", "reason", reason, "port", port, "remote", c.RemoteAddr().String())
		c.Close()
	}
	// Mesh traffic comes over mTLS to the inbound port, which the rules
	// leave alone: whatever is redirected here is plaintext from outside.
	if p.opts.InboundTLS != nil && !st.permissive() {
		refuse(fmt.Sprintf("workload %s is in strict mTLS mode: plaintext is refused", wl.Ref))
		return
	}
	if what, ok := ownPort(wl, port); ok {
		refuse("port " + strconv.FormatUint(uint64(port), 10) + " is " + what)
		return
	}
	if port == p.tr.opts.InboundPort || port == p.tr.opts.OutboundPort {
		refuse("the port is the proxy's transparent listener")
		return
	}
	wp, ok := wl.Port(port)
	if !ok {
		refuse(fmt.Sprintf("port %d is not a declared port of workload %s", port, wl.Ref))
		return
	}
	conn, isHTTP, err := p.settle(c, wp.Protocol)
	if err != nil {
		p.log.Debug("transparent inbound detection failed", "port", port, "error", err)
		c.Close()
		return
	}
	if isHTTP {
		if !p.tr.listeners.inQ.deliver(&routedConn{Conn: conn, port: port, dst: dst}) {
			conn.Close()
		}
		return
	}
	p.spliceToApp(st, conn, port)
}

// serveTransparentInbound serves one request of a redirected HTTP
// connection as the inbound listener serves a plaintext client's, on the
// port the connection was made to: the client, outside the mesh, names
// no port, and may not name another than the one it called.
func (p *Proxy) serveTransparentInbound(w http.ResponseWriter, r *http.Request) {
	rc := r.Context().Value(routedKey{}).(*routedConn)
	meshheader.Strip(r.Header)
	r.Header.Set(meshheader.TargetPort, strconv.FormatUint(uint64(rc.port), 10))
	r.Header.Set(meshheader.Proto, meshheader.ProtoOf(r))
	p.serveInbound(w, r)
}

// spliceToApp carries an opaque connection from outside the mesh to the
// app's port, once authorization (for which the client has no identity)
// and the rate limit let it.
func (p *Proxy) spliceToApp(st *state, c net.Conn, port uint32) {
	d := st.authz.Decide(authz.Request{Port: port})
	decision := "allow"
	if !d.Allowed {
		decision = "deny"
	}
	p.metrics.authz.WithLabelValues(decision, d.Policy, unauthenticated).Inc()
	if !d.Allowed {
		p.log.Warn("inbound denied", "source_identity", unauthenticated, "port", port, "policy", d.Policy, "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	if rl := st.cfg.Authz; rl != nil && rl.RateLimit != nil && !p.bucket.take() {
		p.metrics.rateLimited.WithLabelValues(rl.RateLimit.Policy).Inc()
		p.log.Debug("inbound rate limited", "policy", rl.RateLimit.Policy, "port", port, "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	appAddr := model.HostPort(p.opts.AppAddress, port)
	dl := net.Dialer{Timeout: appDialTimeout}
	app, err := dl.DialContext(p.ctx, "tcp", appAddr)
	if err != nil {
		p.log.Warn("connect to app failed", "app", appAddr, "error", err)
		c.Close()
		return
	}
	if err := pipe(c, app); err != nil {
		p.log.Debug("inbound connection ended", "app", appAddr, "error", err)
	}
}

// pipe splices down (the side that connected) and up until both end.
func pipe(down, up net.Conn) error {
	return tunnel.Pipe(asHalfCloser(down), asHalfCloser(up), clientLinger)
}
