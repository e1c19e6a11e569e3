package proxy

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
	"github.com/weftmesh/weft/internal/proxy/tap"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// The golden signals of every request the proxy carries: traffic
// (requests), errors (responses by class), latency (a histogram), and
// saturation (requests in flight; the process collector has CPU and
// memory). Labels are the mesh's objects (workloads, services, identities,
// routes) and bounded codes, never paths or addresses, so their number
// stays bounded however many requests pass. The same observation feeds
// tap when someone taps.

// latencyBuckets resolve p50/p95/p99 from 0.1 ms to 10 s: sub-millisecond
// for calls within a host, then roughly 1-2-3-5 steps.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
	0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10,
}

// peerLabels say who called whom; requests and responses carry them all.
var peerLabels = []string{"direction", "protocol", "tls", "source_workload", "source_identity",
	"destination_service", "destination_workload", "destination_identity", "route"}

// goldenMetrics are the per-request and per-connection series.
type goldenMetrics struct {
	requests  *prometheus.CounterVec
	responses *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	inFlight  *prometheus.GaugeVec
	// TCP connections accepted by the proxy's listeners, and their bytes.
	connsOpened, connsClosed, connBytes *prometheus.CounterVec

	// series caches the children of each request's label set:
	// WithLabelValues hashes and validates every value on each call,
	// which was most of what telemetry cost a request (see
	// docs/benchmarks-control-plane.md). The labels are the mesh's
	// objects and bounded codes, so the cache is as bounded as the
	// series themselves.
	seriesMu sync.RWMutex
	series   map[seriesKey]*requestSeries
}

// seriesKey is every label value of one request's series; code is ""
// for a request that got no answer.
type seriesKey struct {
	direction, proto, tls, srcWorkload, srcIdentity, service, dstWorkload, dstIdentity, route string
	code, grpcStatus, class                                                                   string
}

// requestSeries are the children one request counts in; responses is nil
// when the key has no status code.
type requestSeries struct {
	requests, responses prometheus.Counter
	latency             prometheus.Observer
}

func (g *goldenMetrics) seriesOf(k seriesKey) *requestSeries {
	g.seriesMu.RLock()
	s := g.series[k]
	g.seriesMu.RUnlock()
	if s != nil {
		return s
	}
	peer := []string{k.direction, k.proto, k.tls, k.srcWorkload, k.srcIdentity, k.service, k.dstWorkload, k.dstIdentity, k.route}
	s = &requestSeries{
		requests: g.requests.WithLabelValues(peer...),
		latency:  g.latency.WithLabelValues(k.direction, k.proto, k.srcWorkload, k.service, k.dstWorkload, k.route, k.class),
	}
	if k.code != "" {
		s.responses = g.responses.WithLabelValues(append(peer, k.code, k.code[:1]+"xx", k.grpcStatus, k.class)...)
	}
	g.seriesMu.Lock()
	g.series[k] = s
	g.seriesMu.Unlock()
	return s
}

func newGoldenMetrics(reg prometheus.Registerer) *goldenMetrics {
	g := &goldenMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_requests_total",
			Help: "HTTP and gRPC requests the proxy carried, answered or not, by direction (inbound: calls the workload took; outbound: calls it made) and peers.",
		}, peerLabels),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_responses_total",
			Help: "Responses to the requests the proxy carried, by status code and class, gRPC status, and classification (failure: 5xx, a gRPC error status, or no answer).",
		}, append(append([]string{}, peerLabels...), "status_code", "status_class", "grpc_status", "classification")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "weft_response_latency_seconds",
			Help:    "Time from a request's arrival at the proxy to its response's headers, by direction, peers and classification.",
			Buckets: latencyBuckets,
		}, []string{"direction", "protocol", "source_workload", "destination_service", "destination_workload", "route", "classification"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "weft_requests_in_flight",
			Help: "Requests the proxy is carrying now, by direction.",
		}, []string{"direction"}),
		connsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_opened_total",
			Help: "TCP connections the proxy accepted: inbound from peer proxies and outside clients, outbound from its app, by the service the outbound port leads to.",
		}, []string{"direction", "destination_service"}),
		connsClosed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_connections_closed_total",
			Help: "TCP connections the proxy accepted that have closed.",
		}, []string{"direction", "destination_service"}),
		connBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_tcp_bytes_total",
			Help: "Bytes on the TCP connections the proxy accepted, by flow: received from the connecting side or sent to it.",
		}, []string{"direction", "destination_service", "flow"}),
		series: map[seriesKey]*requestSeries{},
	}
	reg.MustRegister(g.requests, g.responses, g.latency, g.inFlight, g.connsOpened, g.connsClosed, g.connBytes)
	return g
}

// Directions of traffic.
const (
	inbound  = "inbound"
	outbound = "outbound"
)

// exchange is what the proxy learns about one request while carrying it;
// the handlers fill it in, and observed reads it when the request ends.
type exchange struct {
	direction string
	// route names the route rule that took the request; service the
	// Service it went to; endpoint the endpoint that answered (outbound).
	route    string
	service  string
	endpoint *model.Endpoint
	// span is the request's trace span, nil when tracing is off.
	span *trace.Span
	// self is the proxy's workload in the config in force when the
	// request came: it names this side, and says whether to log it.
	self *model.Workload
	// peer and peerID are the verified identity of an inbound request's
	// caller, read from its certificate once for the metrics, the
	// authorization and the app's header: nil and unauthenticated without
	// one.
	peer   *model.Principal
	peerID string
}

type exchangeKey struct{}

// exchangeOf returns the request's exchange; nil outside observed.
func exchangeOf(ctx context.Context) *exchange {
	x, _ := ctx.Value(exchangeKey{}).(*exchange)
	return x
}

// observed wraps a listener's handler so that every request it serves is
// counted, timed, traced and offered to tap.
func (p *Proxy) observed(direction string, h http.Handler) http.Handler {
	inFlight := p.golden.inFlight.WithLabelValues(direction)
	kind := trace.KindClient
	if direction == inbound {
		kind = trace.KindServer
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		x := &exchange{direction: direction}
		if st := p.cur.Load(); st != nil {
			x.self = st.cfg.Workload
		}
		if direction == inbound {
			x.peer, x.peerID = peerIdentity(r.TLS)
		}
		// Before anything may refuse the request, so refusals show in the
		// trace too; it rewrites the trace headers the request carries on.
		x.span = p.opts.Tracer.StartRequest(r, kind)
		ow := &observedWriter{ResponseWriter: w}
		inFlight.Inc()
		defer func() {
			inFlight.Dec()
			v := recover()
			// A response cut mid-body (http.ErrAbortHandler) failed, whatever
			// its status said.
			p.record(r, x, ow, start, v != nil)
			if v != nil {
				panic(v)
			}
		}()
		ctx := context.WithValue(r.Context(), exchangeKey{}, x)
		if x.span != nil {
			ctx = trace.NewContext(ctx, x.span)
		}
		h.ServeHTTP(ow, r.WithContext(ctx))
	})
}

// record counts one finished request and hands it to tap.
func (p *Proxy) record(r *http.Request, x *exchange, ow *observedWriter, start time.Time, aborted bool) {
	self := x.self
	l := p.peers(r, x)
	proto := protocolLabel(r, x.direction)
	tls := "false"
	if x.direction == inbound && r.TLS != nil || x.direction == outbound && p.opts.Dialer != nil {
		tls = "true"
	}
	headersAt := ow.headersAt
	if headersAt.IsZero() {
		headersAt = time.Now()
	}
	latency := headersAt.Sub(start)
	grpcStatus := grpcStatusOf(ow.Header())
	class := "success"
	if aborted || ow.status == 0 || ow.status >= 500 || grpcStatus != "" && grpcStatus != "0" {
		class = "failure"
	}
	key := seriesKey{direction: x.direction, proto: proto, tls: tls, srcWorkload: l.srcWorkload, srcIdentity: l.srcIdentity,
		service: x.service, dstWorkload: l.dstWorkload, dstIdentity: l.dstIdentity, route: x.route, grpcStatus: grpcStatus, class: class}
	if ow.status != 0 {
		key.code = strconv.Itoa(ow.status)
	}
	series := p.golden.seriesOf(key)
	series.requests.Inc()
	if series.responses != nil {
		series.responses.Inc()
	}
	series.latency.Observe(latency.Seconds())
	if s := x.span; s != nil {
		s.SetProtocol(proto)
		s.SetRoute(x.route)
		s.SetSource(trace.Peer{Workload: l.srcWorkload, Identity: l.srcIdentity})
		s.SetDestination(trace.Peer{Workload: l.dstWorkload, Service: x.service, Identity: l.dstIdentity})
		switch code, err := strconv.Atoi(grpcStatus); {
		case aborted || ow.status == 0:
			s.SetError(errNoAnswer)
		case err == nil:
			s.SetGRPCStatus(code)
		default:
			s.SetHTTPStatus(ow.status)
		}
		s.End()
	}
	accessLog := self != nil && self.AccessLog
	if !p.tap.Active() && !accessLog {
		return
	}
	proxyName := ""
	if self != nil {
		proxyName = self.Ref.String()
	}
	e := &tap.Event{
		Time: start, Proxy: proxyName, Direction: x.direction, Protocol: proto,
		Method: r.Method, Authority: r.Host, Path: r.URL.Path, Status: ow.status, GRPCStatus: grpcStatus, Latency: latency,
		SourceIdentity: l.srcIdentity, SourceWorkload: l.srcWorkload,
		DestinationIdentity: l.dstIdentity, DestinationService: x.service, DestinationWorkload: l.dstWorkload,
		Route: x.route, TLS: tls == "true",
	}
	if accessLog {
		p.logAccess(e, class, aborted)
	}
	p.tap.Publish(e)
}

// logAccess writes one request to the access log: what tap shows, and
// never query strings, headers or bodies, which may carry secrets.
func (p *Proxy) logAccess(e *tap.Event, class string, aborted bool) {
	p.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
		slog.String("proxy", e.Proxy), slog.String("direction", e.Direction), slog.String("protocol", e.Protocol),
		slog.String("method", e.Method), slog.String("authority", e.Authority), slog.String("path", e.Path),
		slog.Int("status", e.Status), slog.String("grpc_status", e.GRPCStatus), slog.String("classification", class),
		slog.Bool("aborted", aborted), slog.Float64("latency_ms", float64(e.Latency.Microseconds())/1000),
		slog.String("source_identity", e.SourceIdentity), slog.String("source_workload", e.SourceWorkload),
		slog.String("destination_service", e.DestinationService), slog.String("destination_workload", e.DestinationWorkload),
		slog.String("destination_identity", e.DestinationIdentity), slog.String("route", e.Route), slog.Bool("tls", e.TLS))
}

// errNoAnswer marks a span whose request got no complete answer.
var errNoAnswer = errors.New("no complete answer: the request or its response was cut off")

// peerNames are the workloads and identities on each side of a request.
type peerNames struct {
	srcWorkload, srcIdentity, dstWorkload, dstIdentity string
}

// peers names both sides: the proxy's own workload on its side, and on the
// other what it knows, verified: the peer certificate's identity inbound
// (not the calling workload, which only the caller could claim), the
// endpoint the control plane named outbound.
func (p *Proxy) peers(r *http.Request, x *exchange) peerNames {
	self := x.self
	var n peerNames
	selfName, selfID := "", ""
	if self != nil {
		selfName, selfID = self.Ref.String(), p.identityOf(model.Ref{Namespace: self.Ref.Namespace, Name: self.Identity().Name})
	}
	if x.direction == inbound {
		n.srcIdentity = x.peerID
		n.dstWorkload, n.dstIdentity = selfName, selfID
		return n
	}
	n.srcWorkload, n.srcIdentity = selfName, selfID
	if ep := x.endpoint; ep != nil {
		n.dstWorkload, n.dstIdentity = ep.Workload.String(), p.identityOf(ep.ServiceAccount)
	}
	return n
}

// identityOf is the SPIFFE ID of a service account, "" when the proxy
// has no trust domain (no identities, as in tests). Every request asks it
// twice, so each is built once: there are as many as service accounts
// the proxy meets.
func (p *Proxy) identityOf(sa model.Ref) string {
	if p.trustDomain.IsZero() {
		return ""
	}
	if id, ok := p.identities.Load(sa); ok {
		return id.(string)
	}
	id, err := identity.WorkloadID(p.trustDomain, sa.Namespace, sa.Name)
	if err != nil {
		return ""
	}
	p.identities.Store(sa, id.String())
	return id.String()
}

// protocolLabel is grpc, http2 or http1: what the application spoke. The
// inbound side learns it from the calling proxy, since the hop between
// proxies is always HTTP/2.
func protocolLabel(r *http.Request, direction string) string {
	if isGRPC(r) {
		return "grpc"
	}
	proto := meshheader.ProtoOf(r)
	if direction == inbound {
		if p, err := meshheader.ParseProto(r.Header); err == nil {
			proto = p
		}
	}
	if proto == meshheader.ProtoHTTP2 {
		return "http2"
	}
	return "http1"
}

// grpcStatusOf reads the gRPC status of an answer: a header in a
// trailers-only answer, else a trailer the handler set after the body.
func grpcStatusOf(h http.Header) string {
	if v := h.Get("Grpc-Status"); v != "" {
		return v
	}
	return h.Get(http.TrailerPrefix + "Grpc-Status")
}

// observedWriter notes the status of a response and when its headers
// went out. It unwraps for http.ResponseController, which the reverse
// proxies use to flush, hijack and enable full duplex.
type observedWriter struct {
	http.ResponseWriter
	status    int
	headersAt time.Time
}

func (w *observedWriter) WriteHeader(code int) {
	// 1xx answers other than 101 are interim: the final status follows.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status, w.headersAt = code, time.Now()
	}
	w.ResponseWriter.WriteHeader(code)
}

// confirmed notes a status the handler wrote itself, on a connection it
// took over from the server.
func (w *observedWriter) confirmed(code int) {
	if w.status == 0 {
		w.status, w.headersAt = code, time.Now()
	}
}

func (w *observedWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status, w.headersAt = http.StatusOK, time.Now()
	}
	return w.ResponseWriter.Write(b)
}

func (w *observedWriter) Flush() { _ = http.NewResponseController(w.ResponseWriter).Flush() }

func (w *observedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *observedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// connCounters count the connections of one direction and service, and
// their bytes.
type connCounters struct {
	opened, closed, received, sent prometheus.Counter
}

func (g *goldenMetrics) connCounters(direction, service string) *connCounters {
	return &connCounters{
		opened:   g.connsOpened.WithLabelValues(direction, service),
		closed:   g.connsClosed.WithLabelValues(direction, service),
		received: g.connBytes.WithLabelValues(direction, service, "received"),
		sent:     g.connBytes.WithLabelValues(direction, service, "sent"),
	}
}

// count counts c as opened, and its bytes and close as they come.
func (cc *connCounters) count(c net.Conn) net.Conn {
	cc.opened.Inc()
	return &countedConn{Conn: c, cc: cc}
}

// countedListener counts the connections it accepts.
type countedListener struct {
	net.Listener
	cc *connCounters
}

func (l *countedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.cc.count(c), nil
}

// countedConn adds its bytes to the counters as they pass, so long-lived
// connections show up before they close.
type countedConn struct {
	net.Conn
	cc     *connCounters
	closed atomic.Bool
}

func (c *countedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.cc.received.Add(float64(n))
	return n, err
}

func (c *countedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.cc.sent.Add(float64(n))
	return n, err
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.cc.closed.Inc()
	}
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when it can; tunnels need it.
func (c *countedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return nil
}

// Tap streams the events of the requests the proxy carries, filtered by
// the request's query (see tap.Hub.Serve). Whoever serves it decides who
// may tap.
func (p *Proxy) Tap(w http.ResponseWriter, r *http.Request) { p.tap.Serve(w, r) }
