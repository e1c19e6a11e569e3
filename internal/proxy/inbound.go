package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/authz"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tunnel"
)

// startInbound serves mesh traffic from peer proxies on ln: HTTP/2 only.
func (p *Proxy) startInbound(addr string, ln net.Listener) *server {
	ln = &countedListener{Listener: ln, cc: p.golden.connCounters(inbound, "")}
	if p.opts.InboundTLS != nil {
		ln = newMixedListener(ln, p.opts.InboundTLS, p.permissive, p.log)
	}
	// HTTP2 over mTLS is what peers speak; h2c with prior knowledge is what
	// they speak without identities (tests); HTTP/1.1 is for plaintext
	// clients from outside the mesh in permissive mode.
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	observed := p.observed(inbound, http.HandlerFunc(p.serveInbound))
	// A tap stream never ends by itself: end the open ones when the server
	// drains, which would otherwise wait for them its whole timeout.
	tapsDone, endTaps := context.WithCancel(context.Background())
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The control plane's tap is not a request the workload took:
			// it goes around the telemetry, or every tap would count as a
			// request and show in the taps when it ends. A refused one goes
			// through, to be counted and logged like any refusal.
			if meshheader.IsTap(r.Header) && p.tapAllowed(r) == nil {
				p.serveTap(tapsDone, w, r)
				return
			}
			observed.ServeHTTP(w, r)
		}),
		Protocols: &protos,
		// Peers multiplex every request for this workload onto few
		// connections; the net/http default of 250 streams is too low.
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 1000},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       10 * time.Minute,
		ErrorLog:          p.httpLog,
	}
	srv.RegisterOnShutdown(endTaps)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("inbound listener failed", "addr", addr, "error", err)
		}
	}()
	p.log.Info("inbound listening", "addr", addr)
	return &server{role: "inbound", addr: addr, srv: srv}
}

type appKey struct{}

// appTarget is where one inbound request goes.
type appTarget struct {
	addr  string
	start time.Time
}

// serveInbound checks a request from a peer proxy and hands it to the app.
func (p *Proxy) serveInbound(w http.ResponseWriter, r *http.Request) {
	// One config for the whole request, even if Apply swaps in another.
	st := p.cur.Load()
	wl := st.cfg.Workload
	if meshheader.IsTap(r.Header) {
		// An allowed tap never gets here (see startInbound); one that does
		// is refused, never passed to the app.
		p.refuse(w, r, http.StatusForbidden, "inbound", p.tapAllowed(r).Error())
		return
	}
	if p.opts.InboundTLS != nil && r.TLS == nil {
		// A plaintext client: let in at accept time because the workload
		// was permissive. It may have turned strict since, and plaintext
		// clients only ever get HTTP, never a tunnel to an app port.
		switch {
		case !st.permissive():
			w.Header().Set("Connection", "close")
			p.refuse(w, r, http.StatusForbidden, "inbound", fmt.Sprintf("workload %s is in strict mTLS mode: plaintext is refused", wl.Ref))
			return
		case r.Method == http.MethodConnect:
			p.refuse(w, r, http.StatusForbidden, "inbound", "plaintext clients may not open tunnels")
			return
		}
	}
	port, err := meshheader.ParseTargetPort(r.Header)
	if errors.Is(err, meshheader.ErrMissing) && r.TLS == nil && len(wl.Ports) == 1 {
		// A plaintext client from outside the mesh (permissive mode) does
		// not name a port; a workload with one port needs none.
		port, err = wl.Ports[0].Port, nil
	}
	if err != nil {
		p.refuse(w, r, http.StatusBadRequest, "inbound", err.Error())
		return
	}
	// Validate keeps the proxy's own ports out of the declared ones; this
	// holds even for a config that slipped past it, so a peer can never
	// make the proxy connect to itself.
	if what, ok := ownPort(wl, port); ok {
		p.refuse(w, r, http.StatusForbidden, "inbound", fmt.Sprintf("port %d is %s", port, what))
		return
	}
	// Only declared ports: otherwise the inbound would relay peers to any
	// socket on the host.
	wp, ok := wl.Port(port)
	if !ok {
		p.refuse(w, r, http.StatusForbidden, "inbound",
			fmt.Sprintf("port %d is not a declared port of workload %s", port, wl.Ref))
		return
	}
	if !p.authorize(w, r, st, port) || p.rateLimited(w, r, st) {
		return
	}
	appAddr := model.HostPort(p.opts.AppAddress, port)
	if r.Method == http.MethodConnect {
		p.serveInboundTunnel(w, r, appAddr)
		return
	}
	proto, err := appProto(wp, r.Header)
	if err != nil {
		p.refuse(w, r, http.StatusBadRequest, "inbound", err.Error())
		return
	}
	ctx := context.WithValue(r.Context(), appKey{}, &appTarget{addr: appAddr, start: time.Now()})
	p.toApp[proto].ServeHTTP(w, r.WithContext(ctx))
}

// tapAllowed says why r may not tap the proxy, or nil when it may: a GET
// over mTLS whose verified peer is the control plane. The control plane
// is the operator's only way in, and it checks the operator's credentials;
// the proxy trusts no one else with what its workload sends and receives.
func (p *Proxy) tapAllowed(r *http.Request) error {
	if r.TLS == nil {
		return errors.New("tap is served only to the control plane over mTLS, not to a plaintext client")
	}
	if p.trustDomain.IsZero() {
		return errors.New("tap: this proxy has no trust domain, so it knows no control plane to serve")
	}
	want := identity.ControlPlaneID(p.trustDomain)
	if id, err := identity.PeerID(*r.TLS); err != nil || id != want {
		_, source := peerIdentity(r.TLS)
		return fmt.Errorf("tap is served only to the control plane (%s), not to %s", want, source)
	}
	if r.Method != http.MethodGet {
		return fmt.Errorf("tap: method %s, want GET", r.Method)
	}
	return nil
}

// serveTap streams the proxy's request events to the control plane until
// it goes away or the listener drains (done).
func (p *Proxy) serveTap(done context.Context, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(done, cancel)
	defer stop()
	start := time.Now()
	p.log.Info("tap started", "filter", r.URL.RawQuery, "remote", r.RemoteAddr)
	p.Tap(w, r.WithContext(ctx))
	p.log.Info("tap ended", "remote", r.RemoteAddr, "duration", time.Since(start).Round(time.Millisecond).String())
}

// permissive reports whether the workload accepts plaintext clients now.
func (p *Proxy) permissive() bool { return p.cur.Load().permissive() }

// permissive reports whether the config lets plaintext clients in.
func (st *state) permissive() bool {
	return st != nil && st.cfg.Authz != nil && st.cfg.Authz.Permissive
}

// authorize checks the request, or the tunnel a CONNECT opens, against
// the workload's authorization, and answers a denial: 403 for HTTP,
// PERMISSION_DENIED for gRPC; a refused tunnel's client proxy closes the
// client's connection. Every decision is counted; denials are logged with
// the source identity.
func (p *Proxy) authorize(w http.ResponseWriter, r *http.Request, st *state, port uint32) bool {
	x := exchangeOf(r.Context())
	principal, source := x.peer, x.peerID
	req := authz.Request{Source: principal, Port: port}
	if r.Method != http.MethodConnect {
		req.HTTP = r
	}
	d := st.authz.Decide(req)
	decision := "allow"
	if !d.Allowed {
		decision = "deny"
	}
	p.metrics.authz.WithLabelValues(decision, d.Policy, source).Inc()
	if d.Allowed {
		return true
	}
	why := "denied by " + d.Policy
	switch {
	case d.Matched:
	case d.Policy == "":
		why = "no authorization policy allows it"
	default:
		why = "no rule of " + d.Policy + " allows it"
	}
	p.log.Warn("inbound denied", "source_identity", source, "port", port, "policy", d.Policy,
		"method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
	p.refuse(w, r, http.StatusForbidden, "inbound", fmt.Sprintf("%s to port %d: %s", source, port, why))
	return false
}

// unauthenticated names the source of a request or connection without a
// verified peer certificate, in metrics and logs.
const unauthenticated = "unauthenticated"

// peerIdentity is the identity a verified peer certificate proves, and its
// SPIFFE ID for logs and metrics; nil and unauthenticated for a
// connection without one.
func peerIdentity(cs *tls.ConnectionState) (*model.Principal, string) {
	if cs == nil {
		return nil, unauthenticated
	}
	id, err := identity.PeerID(*cs)
	if err != nil {
		return nil, unauthenticated
	}
	ns, sa, err := identity.ParseWorkloadID(id)
	if err != nil {
		return nil, id.String()
	}
	return &model.Principal{Namespace: ns, ServiceAccount: sa}, id.String()
}

// ownPort says which of the proxy's own listeners is on port, if one is.
func ownPort(wl *model.Workload, port uint32) (string, bool) {
	switch {
	case port == wl.InboundPort:
		return "the proxy's inbound port", true
	case wl.AdminPort != 0 && port == wl.AdminPort:
		return "the proxy's admin port", true
	}
	for _, o := range wl.Outbound {
		if port == o.LocalPort {
			return fmt.Sprintf("the local port of outbound %s", o.Service), true
		}
	}
	return "", false
}

// appProto is the protocol to speak to the app: the port's, else the one
// the original client spoke. A port declared tcp that receives HTTP
// requests (its service port said http) gets them as the client sent them.
func appProto(wp model.WorkloadPort, h http.Header) (string, error) {
	switch wp.Protocol {
	case model.ProtocolHTTP1:
		return meshheader.ProtoHTTP1, nil
	case model.ProtocolHTTP2, model.ProtocolGRPC:
		return meshheader.ProtoHTTP2, nil
	}
	proto, err := meshheader.ParseProto(h)
	if errors.Is(err, meshheader.ErrMissing) {
		return meshheader.ProtoHTTP1, nil
	}
	return proto, err
}

// serveInboundTunnel pipes a tunnel a peer opened to a new connection to
// the app. The tunnel's CONNECT came over HTTP/1.1 on a connection of its
// own, which the proxy takes over from the server; the proxy's shutdown
// waits for it as for its other tunnels, which no server accounts for.
func (p *Proxy) serveInboundTunnel(w http.ResponseWriter, r *http.Request, appAddr string) {
	if r.ProtoMajor != 1 {
		p.refuse(w, r, http.StatusBadRequest, "inbound",
			"a tunnel is an HTTP/1.1 CONNECT on a connection of its own, not a stream of an HTTP/2 connection")
		return
	}
	d := net.Dialer{Timeout: appDialTimeout}
	c, err := d.DialContext(r.Context(), "tcp", appAddr)
	if err != nil {
		p.refuse(w, r, http.StatusBadGateway, "inbound", fmt.Sprintf("connect to app at %s: %v", appAddr, err))
		return
	}
	if err := p.serveTakenTunnel(w, r, asHalfCloser(c)); err != nil {
		p.log.Debug("inbound tunnel ended", "app", appAddr, "remote", r.RemoteAddr, "error", err)
	}
}

func (p *Proxy) serveTakenTunnel(w http.ResponseWriter, r *http.Request, app tunnel.HalfCloser) error {
	if !p.tunnels.accepting() {
		app.Close()
		p.refuse(w, r, http.StatusServiceUnavailable, "inbound", "the proxy is shutting down")
		return ErrShutdown
	}
	down, err := tunnel.Take(w)
	if err != nil {
		app.Close()
		p.refuse(w, r, http.StatusInternalServerError, "inbound", err.Error())
		return err
	}
	if !p.tunnels.add(down) {
		// It began shutting down since the check above: the peer reads
		// no answer, and fails the tunnel.
		down.Close()
		app.Close()
		return ErrShutdown
	}
	defer p.tunnels.done(down)
	if err := down.Confirm(); err != nil {
		down.Close()
		app.Close()
		return err
	}
	if ow, ok := w.(*observedWriter); ok {
		ow.confirmed(http.StatusOK)
	}
	return tunnel.Pipe(down, app, 0)
}

// newAppProxy forwards to the app on the address serveInbound put in the
// request context.
func (p *Proxy) newAppProxy(rt http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rewriteCommon(pr)
			pr.Out.URL.Host = pr.In.Context().Value(appKey{}).(*appTarget).addr
			p.setClientCert(pr)
		},
		Transport:      rt,
		ModifyResponse: keepGRPCStatus,
		// No FlushInterval: as newForwarder's, streams flush at once.
		ErrorLog:   p.httpLog,
		BufferPool: copyBuffers,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				p.log.Debug("inbound request canceled", "path", r.URL.Path, "error", err)
				return
			}
			app := r.Context().Value(appKey{}).(*appTarget)
			p.upstreamFailed(w, r, app.start, "inbound", fmt.Sprintf("app at %s: %v", app.addr, err))
		},
	}
}

// ClientCertHeader tells the app who called it, in the format Envoy and
// Istio use (By=<this workload's SPIFFE ID>;URI=<the caller's>), so an
// app can use the caller's verified identity without terminating TLS.
// The proxy sets it on every request from a verified peer and removes
// what any client sent in it: the app can trust it.
const ClientCertHeader = "X-Forwarded-Client-Cert"

func (p *Proxy) setClientCert(pr *httputil.ProxyRequest) {
	pr.Out.Header.Del(ClientCertHeader)
	x := exchangeOf(pr.In.Context())
	if x.peerID == unauthenticated {
		return
	}
	v := "URI=" + x.peerID
	if self := x.self; self != nil {
		if by := p.identityOf(model.Ref{Namespace: self.Ref.Namespace, Name: self.Identity().Name}); by != "" {
			v = "By=" + by + ";" + v
		}
	}
	pr.Out.Header.Set(ClientCertHeader, v)
}

// rewriteCommon makes the outgoing request of either side, but for the
// address it goes to: same Host, query and forwarding headers as the
// client sent (a sidecar is not a hop the app should see), no mesh
// headers.
func rewriteCommon(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = pr.In.Host
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	meshheader.Strip(pr.Out.Header)
}

func newAppTransport(h2c bool) *http.Transport {
	d := &net.Dialer{Timeout: appDialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext: d.DialContext,
		// Everything goes to one app: keep many connections to it, and
		// never consult proxy environment variables.
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if h2c {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		t.Protocols = &protos
	}
	return t
}
