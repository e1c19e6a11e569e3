package proxy

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/authz"
	"github.com/weftmesh/weft/internal/proxy/balance"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/pool"
	"github.com/weftmesh/weft/internal/proxy/tap"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// Options configure a Proxy. The zero value of each field is a sensible
// default.
type Options struct {
	Logger *slog.Logger
	// AppAddress is where the app listens; default "127.0.0.1".
	AppAddress string
	// DrainTimeout bounds Shutdown and the retirement of listeners a new
	// config drops; default 10s.
	DrainTimeout time.Duration
	// DetectTimeout is how long an outbound connection on a port with no
	// declared protocol may stay silent before it is called opaque TCP;
	// default 100ms.
	DetectTimeout time.Duration
	// Dialer connects to peer proxies; nil is plain TCP.
	Dialer pool.Dialer
	// Balancer names a balancer in package balance's registry; "" is
	// balance.Default.
	Balancer string
	// InboundTLS, when set, is the mTLS server side of the inbound
	// listener: clients must complete a handshake with it, except
	// plaintext clients while the workload is in permissive mode. Nil
	// serves plaintext only (peers with no identity, as in tests).
	InboundTLS *tls.Config
	// TrustDomain of the mesh's SPIFFE IDs, for the identities metrics
	// and tap name; "" names none (a mesh without identities).
	TrustDomain string
	// AccessLog receives the access log, one JSON object per request, when
	// the workload asks for one; nil is standard output.
	AccessLog io.Writer
	// Tracer, when set, makes a span of each request the proxy carries
	// and passes the trace context on; nil passes trace headers through
	// untouched. Its owner shuts it down.
	Tracer *trace.Tracer
	// Transparent, when set, makes the proxy take the connections that
	// interception redirects to it (see transparent.go); nil serves the
	// explicit ports only.
	Transparent *Transparent
}

const (
	defaultDrainTimeout  = 10 * time.Second
	defaultDetectTimeout = 100 * time.Millisecond
	appDialTimeout       = 5 * time.Second
	// clientLinger is how long a client keeps sending into a tunnel whose
	// far end has finished; see tunnel.Pipe.
	clientLinger = 5 * time.Second
)

// ErrShutdown is returned by Apply after Shutdown.
var ErrShutdown = errors.New("proxy: shut down")

// Proxy is the data plane of one workload.
type Proxy struct {
	opts    Options
	log     *slog.Logger
	httpLog *log.Logger
	pool    *pool.Pool
	// forward carries outbound requests to peer proxies; toApp carries
	// inbound requests to the app, by protocol.
	forward *httputil.ReverseProxy
	toApp   map[string]*httputil.ReverseProxy
	appRTs  []*http.Transport
	tunnels tracker
	metrics *metrics
	golden  *goldenMetrics
	// tap carries request events to whoever taps the proxy.
	tap *tap.Hub
	// tr is transparent interception; nil when the proxy does none.
	tr *transparent
	// access writes the access log.
	access *slog.Logger
	// trustDomain is Options.TrustDomain parsed; zero when it names none.
	trustDomain spiffeid.TrustDomain
	// identities caches identityOf: service account -> SPIFFE ID.
	identities sync.Map
	// ctx lives until Shutdown has finished; tunnels outlive requests.
	ctx    context.Context
	cancel context.CancelFunc

	cur   atomic.Pointer[state]
	ready atomic.Bool

	mu        sync.Mutex // serializes Apply and Shutdown; guards below
	inbound   *server
	outbound  map[uint32]*outboundListener // by local port
	balancers map[target]namedBalancer
	budgets   map[target]*budget
	// bucket is the workload's inbound rate limit, when one applies.
	bucket   tokenBucket
	breakers map[target]*breaker
	balErr   error
	shutdown bool
}

// New makes a Proxy with no config: it listens nowhere until Apply.
func New(opts Options) *Proxy {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.AppAddress == "" {
		opts.AppAddress = "127.0.0.1"
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = defaultDrainTimeout
	}
	if opts.DetectTimeout <= 0 {
		opts.DetectTimeout = defaultDetectTimeout
	}
	p := &Proxy{
		opts:      opts,
		log:       opts.Logger,
		httpLog:   slog.NewLogLogger(opts.Logger.Handler(), slog.LevelDebug),
		pool:      pool.New(pool.Options{Dialer: opts.Dialer, Logger: opts.Logger}),
		outbound:  map[uint32]*outboundListener{},
		balancers: map[target]namedBalancer{},
		budgets:   map[target]*budget{},
		breakers:  map[target]*breaker{},
		tunnels:   tracker{conns: map[net.Conn]struct{}{}},
		metrics:   newMetrics(),
		tap:       tap.NewHub(),
		tr:        newTransparent(opts.Transparent),
	}
	p.golden = newGoldenMetrics(p.metrics.registry)
	if td, err := spiffeid.TrustDomainFromString(opts.TrustDomain); err == nil {
		p.trustDomain = td
	}
	p.access = slog.New(slog.NewJSONHandler(cmp.Or[io.Writer](opts.AccessLog, os.Stdout), nil))
	if _, err := balance.New(opts.Balancer); err != nil {
		p.balErr = fmt.Errorf("proxy: options: %w", err)
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	p.forward = p.newForwarder()
	h1, h2 := newAppTransport(false), newAppTransport(true)
	p.appRTs = []*http.Transport{h1, h2}
	p.toApp = map[string]*httputil.ReverseProxy{
		meshheader.ProtoHTTP1: p.newAppProxy(h1),
		meshheader.ProtoHTTP2: p.newAppProxy(h2),
	}
	return p
}

// namedBalancer is a target's balancer and the name it was made by, so a
// Service that names another balancer gets a new one.
type namedBalancer struct {
	name string
	balance.Balancer
}

// balancerName is the balancer a Service names, else the proxy's.
func (p *Proxy) balancerName(service string) string {
	return cmp.Or(service, p.opts.Balancer, balance.Default)
}

func newBalancer(name string) namedBalancer {
	b, err := balance.New(name)
	if err != nil {
		// Apply refuses configs while the proxy's name is bad, and the
		// wire refuses a Service's unknown one; never reached.
		name = balance.Default
		b, _ = balance.New(name)
	}
	return namedBalancer{name, b}
}

// Apply makes cfg the config in force. It binds any new listeners first,
// so on error (a port in use, an invalid workload) the old config keeps
// serving untouched. Unchanged listeners keep their connections; dropped
// ones drain in the background.
func (p *Proxy) Apply(cfg *model.ProxyConfig) error {
	if cfg == nil || cfg.Workload == nil {
		return errors.New("proxy: apply: config has no workload")
	}
	w := cfg.Workload
	if err := w.Validate(); err != nil {
		return fmt.Errorf("proxy: apply version %d: workload %s: %w", cfg.Version, w.Ref, err)
	}
	authz, err := authz.Compile(cfg.Authz)
	if err != nil {
		return fmt.Errorf("proxy: apply version %d: authorization: %w", cfg.Version, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.balErr != nil {
		return p.balErr
	}
	if p.shutdown {
		return ErrShutdown
	}

	inAddr := model.HostPort(w.Address, w.InboundPort)
	var newIn net.Listener
	newOut := map[uint32]net.Listener{}
	var newTr *transparentListeners
	abort := func(err error) error {
		if newIn != nil {
			newIn.Close()
		}
		if newTr != nil {
			newTr.close()
		}
		for _, ln := range newOut {
			ln.Close()
		}
		return fmt.Errorf("proxy: apply version %d: %w", cfg.Version, err)
	}
	if p.inbound == nil || p.inbound.addr != inAddr {
		ln, err := net.Listen("tcp", inAddr)
		if err != nil {
			return abort(fmt.Errorf("inbound listener: %w", err))
		}
		newIn = ln
	}
	for _, o := range w.Outbound {
		if _, ok := p.outbound[o.LocalPort]; ok {
			continue
		}
		ln, err := net.Listen("tcp", model.HostPort("127.0.0.1", o.LocalPort))
		if err != nil {
			return abort(fmt.Errorf("outbound listener for %s:%d: %w", o.Service, o.Port, err))
		}
		newOut[o.LocalPort] = ln
	}
	if newTr, err = p.bindTransparent(); err != nil {
		return abort(err)
	}

	// Transparent interception reaches services by cluster IP on virtual
	// local ports: their routes are built with the explicit ones.
	built, table := cfg, (*transparentTable)(nil)
	if p.tr != nil {
		built, table = p.plan(cfg)
	}
	st, err := p.buildState(built)
	if err != nil {
		return abort(err)
	}
	st.cfg = cfg
	st.authz = authz
	if rl := cfg.Authz; rl != nil && rl.RateLimit != nil {
		p.bucket.configure(rl.RateLimit.RequestsPerSecond, rl.RateLimit.Burst)
	}
	p.cur.Store(st)
	if p.tr != nil {
		p.tr.commit(table)
	}
	if newTr != nil {
		p.startTransparent(newTr)
	}

	if newIn != nil {
		old := p.inbound
		p.inbound = p.startInbound(inAddr, newIn)
		if old != nil {
			p.retire(old)
		}
	}
	for port, ln := range newOut {
		p.outbound[port] = p.startOutbound(port, ln)
	}
	for port, o := range p.outbound {
		if _, ok := st.routes[port]; !ok {
			delete(p.outbound, port)
			o.ln.Close() // refuse new connections now; drain the rest behind
			p.retire(&o.server)
		}
	}
	// After the swap no request picks a removed endpoint, so its
	// connections only carry what is already in flight.
	p.pool.Retain(st.peers)
	p.ready.Store(true)
	p.log.Info("applied proxy config", "version", cfg.Version, "workload", w.Ref.String(),
		"inbound", inAddr, "outbound", len(p.outbound), "services", len(cfg.Services))
	return nil
}

// server is what inbound and outbound listeners share: the http.Server
// serving them, retired the same way on either side.
type server struct {
	role string // "inbound" or "outbound"
	addr string
	srv  *http.Server
	// accepting, when set, is closed once the loop feeding srv has ended;
	// otherwise srv accepts for itself.
	accepting chan struct{}
}

// drain lets srv finish its connections until ctx ends, then closes what
// is left. A listener srv accepts on itself closes when the drain starts;
// one feeding it through a loop, the caller closes first, so the drain
// never waits on a loop that could still hand srv new connections.
func (s *server) drain(ctx context.Context) error {
	if s.accepting != nil {
		<-s.accepting
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
		return fmt.Errorf("%s listener %s: drain cut short: %w", s.role, s.addr, err)
	}
	return nil
}

// retire drains s in the background, after a config dropped or moved it.
func (p *Proxy) retire(s *server) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.opts.DrainTimeout)
		defer cancel()
		if err := s.drain(ctx); err != nil {
			p.log.Warn("listener drain cut short", "error", err)
		}
	}()
}

// Ready reports whether a config with a workload is applied and its
// listeners are up. It turns false when Shutdown starts.
func (p *Proxy) Ready() bool { return p.ready.Load() }

// Shutdown stops accepting on every listener at once, lets requests and
// tunnels in flight finish until ctx ends or DrainTimeout passes, then
// closes whatever is left. It returns an error when it had to cut
// something off.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.shutdown {
		p.mu.Unlock()
		return nil
	}
	p.shutdown = true
	p.ready.Store(false)
	in, outs := p.inbound, p.outbound
	p.inbound, p.outbound = nil, map[uint32]*outboundListener{}
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, p.opts.DrainTimeout)
	defer cancel()
	p.log.Info("proxy shutting down", "drain_timeout", p.opts.DrainTimeout.String())
	for _, o := range outs {
		o.ln.Close()
	}
	p.mu.Lock()
	trServers := p.closeTransparent()
	p.mu.Unlock()
	// ctx bounds every drain, and what is left when it ends is closed: the
	// drain errors say no more than ctx.Err.
	var wg sync.WaitGroup
	if in != nil {
		wg.Go(func() { _ = in.drain(ctx) })
	}
	for _, o := range outs {
		wg.Go(func() { _ = o.drain(ctx) })
	}
	for _, s := range trServers {
		wg.Go(func() { _ = s.drain(ctx) })
	}
	wg.Go(func() { _ = p.tunnels.wait(ctx) })
	wg.Wait()
	drainErr := ctx.Err()
	cut := p.tunnels.closeAll()
	p.pool.Close()
	for _, t := range p.appRTs {
		t.CloseIdleConnections()
	}
	p.cancel()
	if drainErr != nil {
		return fmt.Errorf("proxy: shutdown: drain unfinished, closed %d tunnels: %w", cut, drainErr)
	}
	p.log.Info("proxy shut down")
	return nil
}

// refuse answers a request the proxy will not carry, and logs why.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, code int, side, msg string) {
	p.log.Warn("request refused", "side", side, "status", code, "reason", msg,
		"method", r.Method, "host", r.Host, "path", r.URL.Path, "remote", r.RemoteAddr)
	if isGRPC(r) {
		writeGRPCError(w, grpcCodeOf(code), "weft "+side+": "+msg)
		return
	}
	http.Error(w, "weft "+side+": "+msg, code)
}

// timedOut answers a request the route's timeout cut: 504, or for gRPC
// DEADLINE_EXCEEDED, as Gateway API's timeouts.request says.
func (p *Proxy) timedOut(w http.ResponseWriter, r *http.Request, rt *route, timeout time.Duration) {
	msg := fmt.Sprintf("weft outbound: the route's request timeout (%s) passed", timeout)
	p.metrics.timeouts.WithLabelValues(rt.out.Service.String()).Inc()
	p.log.Info("request timed out", "service", rt.out.Service.String(), "path", r.URL.Path, "timeout", timeout.String())
	if isGRPC(r) {
		writeGRPCError(w, grpcDeadlineExceeded, msg)
		return
	}
	http.Error(w, msg, http.StatusGatewayTimeout)
}

// upstreamFailed answers a request whose upstream failed before it
// answered. The caller has checked the client is still there.
func (p *Proxy) upstreamFailed(w http.ResponseWriter, r *http.Request, start time.Time, side, msg string) {
	if isGRPC(r) && grpcDeadlinePassed(r, start) {
		p.log.Debug("grpc deadline exceeded", "side", side, "path", r.URL.Path, "reason", msg)
		writeGRPCError(w, grpcDeadlineExceeded, "weft "+side+": deadline exceeded: "+msg)
		return
	}
	p.refuse(w, r, http.StatusBadGateway, side, msg)
}
