package proxy

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/balance"
	"github.com/weftmesh/weft/internal/proxy/detect"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/pool"
	"github.com/weftmesh/weft/internal/proxy/tunnel"
)

// outboundListener is one local port the app calls a service on.
type outboundListener struct {
	server
	port uint32
	ln   net.Listener
	// queue feeds srv the connections found to be HTTP.
	queue *connQueue
}

func (p *Proxy) startOutbound(port uint32, ln net.Listener) *outboundListener {
	o := &outboundListener{
		server: server{role: "outbound", addr: ln.Addr().String(), accepting: make(chan struct{})},
		port:   port,
		ln:     ln,
		queue:  newConnQueue(ln.Addr()),
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	o.srv = &http.Server{
		Handler:           p.observed(outbound, p.outboundHandler(port)),
		Protocols:         &protos,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          p.httpLog,
	}
	go func() {
		if err := o.srv.Serve(o.queue); !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("outbound server failed", "port", port, "error", err)
		}
	}()
	go p.acceptOutbound(o)
	p.log.Info("outbound listening", "addr", ln.Addr().String())
	return o
}

func (p *Proxy) acceptOutbound(o *outboundListener) {
	defer close(o.accepting)
	for {
		c, err := o.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of file descriptors and the like: back off, don't spin.
			p.log.Warn("outbound accept failed", "port", o.port, "error", err)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if !p.tunnels.add(c) {
			c.Close()
			continue
		}
		go p.handleOutboundConn(o, c)
	}
}

// handleOutboundConn settles the protocol of one connection, then serves
// it as HTTP or tunnels it.
func (p *Proxy) handleOutboundConn(o *outboundListener, c net.Conn) {
	defer p.tunnels.done(c)
	rt := p.cur.Load().routes[o.port]
	service := ""
	if rt != nil {
		service = rt.out.Service.String()
	}
	c = p.golden.connCounters(outbound, service).count(c)
	var conn net.Conn = c
	isHTTP := false
	switch proto := rt.protocol(); {
	case proto.IsHTTP():
		isHTTP = true
	case proto == model.ProtocolTCP:
	default:
		res, dc, err := detect.Detect(c, p.opts.DetectTimeout)
		if err != nil {
			p.log.Debug("outbound detection failed", "port", o.port, "error", err)
			c.Close()
			return
		}
		conn, isHTTP = dc, res == detect.HTTP1 || res == detect.HTTP2
	}
	if isHTTP {
		// From here the http.Server owns the connection and its draining.
		if !o.queue.deliver(conn) {
			conn.Close()
		}
		return
	}
	p.tunnelTCP(o, p.cur.Load().routes[o.port], conn)
}

// tunnelTCP carries one opaque connection to an endpoint as a CONNECT
// stream. Opaque bytes have no way to carry an error, so failures close
// the connection and are logged.
func (p *Proxy) tunnelTCP(o *outboundListener, rt *route, c net.Conn) {
	if rt == nil {
		c.Close()
		return
	}
	rt, err := rt.forOpaque()
	if err != nil {
		p.log.Warn("opaque connection refused", "port", o.port, "reason", err.Error(), "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	if b := rt.breaker; b != nil {
		// An opaque connection has no deadline of its own to bound its
		// wait in the breaker's queue.
		ctx, cancel := context.WithTimeout(p.ctx, tunnelWait)
		release, err := b.admit(ctx)
		cancel()
		if err != nil {
			p.tunnelRefused(o, rt, c, err)
			return
		}
		defer release()
	}
	s, ep, done, err := p.dialEndpoint(rt, "")
	switch {
	case err != nil && (ep == nil || isCircuitOpen(err)):
		p.tunnelRefused(o, rt, c, err)
		return
	case err != nil:
		p.log.Warn("opaque connection failed", "port", o.port, "endpoint", ep.ID, "error", err)
		c.Close()
		return
	}
	err = tunnel.Pipe(asHalfCloser(c), s, clientLinger)
	done(err)
	if err != nil {
		p.log.Debug("opaque connection ended", "port", o.port, "endpoint", ep.ID, "error", err)
	}
}

// tunnelRefused closes an opaque connection that goes nowhere, and logs
// why; a circuit breaker's refusal counts.
func (p *Proxy) tunnelRefused(o *outboundListener, rt *route, c net.Conn, err error) {
	if oe := (*circuitOpenError)(nil); errors.As(err, &oe) {
		p.metrics.circuitOpen.WithLabelValues(rt.out.Service.String(), oe.reason).Inc()
	}
	p.log.Warn("opaque connection refused", "port", o.port, "reason", err.Error(), "remote", c.RemoteAddr().String())
	c.Close()
}

// tunnelWait bounds how long a tunnel (an opaque connection, or an
// upgrade once the proxy has taken its connection) may wait for its turn
// under a circuit breaker: it has no deadline of its own.
const tunnelWait = 10 * time.Second

// dialEndpoint opens a tunnel to an endpoint of rt, trying others when a
// peer proxy cannot be reached. On failure ep is nil when the route had
// no endpoint to offer, else the last endpoint tried; done has then
// already been called. The tunnel has a connection of its own; when rt's
// circuit breaker bounds connections, it counts against the bound, and
// the tunnel may wait for it in the breaker's queue, tunnelWait at most
// for the whole dial.
func (p *Proxy) dialEndpoint(rt *route, proto string) (tunnel.HalfCloser, *model.Endpoint, balance.Done, error) {
	ctx, cancel := context.WithCancel(p.ctx)
	dial := p.pool.DialTunnel
	var bound *time.Timer
	if g := rt.connGroup(); g != nil {
		dial = g.DialTunnel
		if rt.breaker.canWait() {
			bound = time.AfterFunc(tunnelWait, cancel)
		}
	}
	var s *tunnel.Stream
	ep, done, err := p.reach(ctx, rt, nil, func(ep *model.Endpoint, port uint32) (err error) {
		s, err = tunnel.Dial(ctx, dial, ep.HostPort(), meshHeader(port, proto))
		if !isConnectFailure(err) {
			p.observe(rt, ep, outcomeOf(nil, err))
		}
		return err
	})
	if err == nil && bound != nil && !bound.Stop() {
		s.Close() // its context is gone
		err = fmt.Errorf("tunnel to service %s not open after %s: %w", rt.out.Service, tunnelWait, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		if done != nil {
			done(balanceErr(err))
		}
		return nil, ep, nil, err
	}
	return boundStream{s, cancel}, ep, done, nil
}

// boundStream is a tunnel stream whose Close also ends the context it was
// dialed in.
type boundStream struct {
	*tunnel.Stream
	cancel context.CancelFunc
}

func (s boundStream) Close() error {
	err := s.Stream.Close()
	s.cancel()
	return err
}

// balanceErr is what the balancer hears of a request that failed with
// err: one a circuit breaker stopped in this proxy never reached the
// endpoint, and is told as a cancellation, which can only say the
// endpoint is no faster than the balancer thought.
func balanceErr(err error) error {
	if isCircuitOpen(err) {
		return fmt.Errorf("%w: %w", context.Canceled, err)
	}
	return err
}

type upstreamKey struct{}

// upstream is where one outbound request goes, and how it went.
type upstream struct {
	route *route
	// rule is the route rule that chose route; nil when no route applies.
	rule  *routeRule
	proto string
	start time.Time
	// client is the client's own context: when it is alive and the
	// request's is not, the route's timeout ended the request.
	client  context.Context
	timeout time.Duration
	// addr and endpoint are those of the last peer proxy tried; empty when
	// the route offered none.
	addr     string
	endpoint string
	err      error
	// answerErr says the last try's answer was a failure (a 5xx, a gRPC
	// error status) although it came: the balancer hears it as a failure.
	answerErr error
	// tried are the endpoints the request has been sent to, so a retry
	// goes elsewhere.
	tried map[string]bool
	// done tells the balancer how the request went on that endpoint.
	done balance.Done
}

// retryConnect is the forwarder's transport: it chooses the endpoint, and
// when its peer proxy cannot be reached, nothing was sent, so the request
// goes to another endpoint whatever its method (the body has not been
// read).
type retryConnect struct{ p *Proxy }

func (rc retryConnect) RoundTrip(req *http.Request) (*http.Response, error) {
	u := req.Context().Value(upstreamKey{}).(*upstream)
	if u.route.retry == nil {
		return rc.tryWithin(req, u, u.backendTimeout())
	}
	return rc.withRetries(req, u)
}

// backendTimeout is the route rule's bound on each request to a backend;
// 0 is none.
func (u *upstream) backendTimeout() time.Duration {
	if u.rule == nil {
		return 0
	}
	return u.rule.rule.BackendTimeout
}

// try sends req once, to an endpoint of u.route (another, when a peer
// proxy cannot be reached); u.done is for the endpoint that answered.
// The connections it travels on are the route's circuit breaker's own
// when it bounds them, else those every service shares.
func (rc retryConnect) try(req *http.Request, u *upstream) (*http.Response, error) {
	var carrier http.RoundTripper = rc.p.pool
	if g := u.route.connGroup(); g != nil {
		carrier = g
	}
	var resp *http.Response
	if u.tried == nil {
		u.tried = map[string]bool{}
	}
	_, done, err := rc.p.reach(req.Context(), u.route, u.tried, func(ep *model.Endpoint, port uint32) error {
		u.addr, u.endpoint = ep.HostPort(), ep.ID
		if x := exchangeOf(req.Context()); x != nil {
			x.endpoint = ep
		}
		// A copy per try: a RoundTripper must not change the request.
		out := req.Clone(req.Context())
		out.URL.Host = u.addr
		maps.Copy(out.Header, meshHeader(port, u.proto))
		if err := propagateGRPCTimeout(out, u.start); err != nil {
			return err
		}
		var err error
		resp, err = carrier.RoundTrip(out)
		if !isConnectFailure(err) { // reach has counted those
			resp = rc.p.observeTry(u, ep, resp, err)
		}
		return err
	})
	u.done = done
	return resp, err
}

func (p *Proxy) outboundHandler(port uint32) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A gRPC deadline runs from here: the time the request spends in
		// this proxy, waiting or delayed, is taken from the grpc-timeout it
		// passes on.
		arrived := time.Now()
		rt := p.cur.Load().routes[port]
		if rt == nil {
			p.refuse(w, r, http.StatusServiceUnavailable, "outbound",
				fmt.Sprintf("local port %d no longer leads to a service", port))
			return
		}
		if r.Method == http.MethodConnect {
			p.refuse(w, r, http.StatusMethodNotAllowed, "outbound", "CONNECT is not supported on an outbound port")
			return
		}
		target, rule, code, err := rt.forRequest(r)
		x := exchangeOf(r.Context())
		x.service = rt.out.Service.String()
		if rule != nil {
			x.route = rule.name
		}
		if err != nil {
			p.refuse(w, r, code, "outbound", err.Error())
			return
		}
		if target != nil {
			x.service = target.out.Service.String()
		}
		if rule != nil && rule.rule.Redirect != nil {
			p.redirect(w, r, rule, rt.out.Port)
			return
		}
		// The route's timeout bounds the whole request, a wait for the
		// circuit breaker included.
		ctx := r.Context()
		var timeout time.Duration
		if rule != nil && rule.rule.Timeout > 0 {
			timeout = rule.rule.Timeout
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		if b := target.breaker; b != nil {
			release, err := b.admit(ctx)
			switch {
			case isCircuitOpen(err):
				p.circuitOpen(w, r, target, err)
				return
			case err != nil && r.Context().Err() == nil:
				p.timedOut(w, r, target, timeout)
				return
			case err != nil:
				return // the client left
			}
			defer release()
		}
		if rule != nil {
			applyHeaders(r.Header, rule.rule.RequestHeaders)
			rule.rewrite(r)
			p.mirror(r, rule)
		}
		if isUpgrade(r) {
			p.serveUpgrade(w, r, target)
			return
		}
		if p.inject(w, r.WithContext(ctx), target, timeout) {
			return
		}
		if r.ProtoMajor == 1 {
			// Let streaming HTTP/1 clients keep sending while the answer
			// flows back; an error only means the server can't.
			_ = http.NewResponseController(w).EnableFullDuplex()
		}
		u := &upstream{route: target, rule: rule, proto: meshheader.ProtoOf(r), start: arrived, client: r.Context(), timeout: timeout}
		// Deferred: ReverseProxy aborts a response broken mid-body with a
		// panic (http.ErrAbortHandler), and the balancer must still hear.
		defer func() {
			if u.done != nil {
				u.done(cmp.Or(balanceErr(u.err), u.answerErr))
			}
		}()
		p.forward.ServeHTTP(w, r.WithContext(context.WithValue(ctx, upstreamKey{}, u)))
	})
}

// newForwarder carries outbound requests to the chosen peer proxy.
func (p *Proxy) newForwarder() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		// The transport sets the peer proxy and the mesh headers, per try.
		Rewrite:   rewriteCommon,
		Transport: retryConnect{p},
		ModifyResponse: func(resp *http.Response) error {
			if u, ok := resp.Request.Context().Value(upstreamKey{}).(*upstream); ok && u.rule != nil {
				applyHeaders(resp.Header, u.rule.rule.ResponseHeaders)
			}
			return keepGRPCStatus(resp)
		},
		// No FlushInterval: ReverseProxy flushes each write of a streamed
		// answer (no Content-Length: gRPC, chunked, server-sent events) at
		// once anyway; flushing a sized one at every write cost a write
		// syscall, and a TLS record or HTTP/2 frame, per chunk.
		ErrorLog:   p.httpLog,
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			u := r.Context().Value(upstreamKey{}).(*upstream)
			u.err = err
			if r.Context().Err() != nil && u.client.Err() == nil {
				p.timedOut(w, r, u.route, u.timeout)
				return
			}
			if r.Context().Err() != nil {
				p.log.Debug("outbound request canceled", "endpoint", u.endpoint, "path", r.URL.Path, "error", err)
				return
			}
			if isCircuitOpen(err) {
				p.circuitOpen(w, r, u.route, err)
				return
			}
			if u.endpoint == "" {
				p.refuse(w, r, http.StatusServiceUnavailable, "outbound", err.Error())
				return
			}
			if errors.Is(err, errPerTryTimeout) {
				p.refuse(w, r, http.StatusGatewayTimeout, "outbound", upstreamMsg(u.endpoint, u.addr, err))
				return
			}
			p.upstreamFailed(w, r, u.start, "outbound", upstreamMsg(u.endpoint, u.addr, err))
		},
	}
}

// circuitOpen answers a request a circuit breaker refused (err): 503, or
// for gRPC UNAVAILABLE, counted by the reason.
func (p *Proxy) circuitOpen(w http.ResponseWriter, r *http.Request, rt *route, err error) {
	var oe *circuitOpenError
	errors.As(err, &oe)
	p.metrics.circuitOpen.WithLabelValues(rt.out.Service.String(), oe.reason).Inc()
	p.refuse(w, r, http.StatusServiceUnavailable, "outbound", oe.Error())
}

func upstreamMsg(endpoint, addr string, err error) string {
	if de := (*pool.DialError)(nil); errors.As(err, &de) {
		return fmt.Sprintf("cannot reach endpoint %s: %v", endpoint, de)
	}
	return fmt.Sprintf("endpoint %s (peer proxy %s): %v", endpoint, addr, err)
}

func meshHeader(port uint32, proto string) http.Header {
	h := http.Header{meshheader.TargetPort: {strconv.FormatUint(uint64(port), 10)}}
	if proto != "" {
		h.Set(meshheader.Proto, proto)
	}
	return h
}

// isUpgrade reports an HTTP/1 protocol upgrade (WebSocket and the like).
func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.Header.Get("Upgrade") != "" &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "upgrade")
}

// serveUpgrade tunnels an upgrade request as raw bytes: the peer writes
// it to the app as is, and the app's answer (101 or not) and everything
// after flow back unparsed.
func (p *Proxy) serveUpgrade(w http.ResponseWriter, r *http.Request, rt *route) {
	if r.ContentLength != 0 || len(r.TransferEncoding) > 0 {
		p.refuse(w, r, http.StatusBadRequest, "outbound", "upgrade requests with a body are not supported")
		return
	}
	s, ep, done, err := p.dialEndpoint(rt, meshheader.ProtoHTTP1)
	if x := exchangeOf(r.Context()); x != nil && ep != nil {
		x.endpoint = ep
	}
	if isCircuitOpen(err) {
		p.circuitOpen(w, r, rt, err)
		return
	}
	if err != nil && ep == nil {
		p.refuse(w, r, http.StatusServiceUnavailable, "outbound", err.Error())
		return
	}
	if err != nil {
		if se := (*tunnel.StatusError)(nil); errors.As(err, &se) {
			p.refuse(w, r, se.Code, "outbound", se.Error())
			return
		}
		p.refuse(w, r, http.StatusBadGateway, "outbound", upstreamMsg(ep.ID, ep.HostPort(), err))
		return
	}
	down, err := tunnel.Take(w)
	if err != nil {
		s.Close()
		done(err)
		p.refuse(w, r, http.StatusInternalServerError, "outbound", err.Error())
		return
	}
	if !p.tunnels.add(down) {
		down.Close()
		s.Close()
		done(ErrShutdown)
		return
	}
	defer p.tunnels.done(down)
	if err := writeRequestHead(s, r); err != nil {
		down.Close()
		s.Close()
		done(err)
		p.log.Warn("upgrade tunnel failed", "endpoint", ep.ID, "error", err)
		return
	}
	// The app's answer passes unparsed; its status, read on the way, is
	// what the request is counted with.
	up := tunnel.HalfCloser(s)
	if ow, ok := w.(*observedWriter); ok {
		up = &statusSniffer{HalfCloser: s, found: ow.confirmed}
	}
	err = tunnel.Pipe(down, up, clientLinger)
	done(err)
	if err != nil {
		p.log.Debug("upgrade tunnel ended", "endpoint", ep.ID, "error", err)
	}
}

// statusSniffer reads the status of an HTTP/1 answer as its first line
// passes through, and hands it to found once.
type statusSniffer struct {
	tunnel.HalfCloser
	line  []byte
	done  bool
	found func(code int)
}

// maxStatusLine bounds what is kept of an answer looking for its status.
const maxStatusLine = 64

func (s *statusSniffer) Read(p []byte) (int, error) {
	n, err := s.HalfCloser.Read(p)
	if !s.done && n > 0 {
		s.line = append(s.line, p[:min(n, maxStatusLine-len(s.line))]...)
		// "HTTP/1.1 101 ...": the code is the second field.
		if i := bytes.IndexByte(s.line, ' '); i >= 0 && len(s.line) >= i+4 {
			if code, err := strconv.Atoi(string(s.line[i+1 : i+4])); err == nil {
				s.found(code)
			}
			s.done = true
		} else if len(s.line) == maxStatusLine {
			s.done = true
		}
	}
	return n, err
}

// writeRequestHead writes r's request line and headers as HTTP/1.1,
// without mesh headers.
func writeRequestHead(w io.Writer, r *http.Request) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s %s HTTP/1.1\r\nHost: %s\r\n", r.Method, r.RequestURI, r.Host)
	h := r.Header.Clone()
	meshheader.Strip(h)
	if err := h.Write(bw); err != nil {
		return fmt.Errorf("write upgrade request: %w", err)
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write upgrade request: %w", err)
	}
	return nil
}

// asHalfCloser adapts a connection for tunnel.Pipe. Connections that
// cannot half-close (none on loopback TCP) just ignore the request.
func asHalfCloser(c net.Conn) tunnel.HalfCloser {
	if hc, ok := c.(tunnel.HalfCloser); ok {
		return hc
	}
	return noHalfClose{c}
}

type noHalfClose struct{ net.Conn }

func (noHalfClose) CloseWrite() error { return nil }
