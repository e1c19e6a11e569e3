package trace

import (
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Kind is the role of a span in its request.
type Kind uint8

// Span kinds the proxy records.
const (
	KindServer Kind = iota + 1 // the inbound side: a request into the workload
	KindClient                 // the outbound side: a request out of the workload
)

func (k Kind) String() string {
	switch k {
	case KindServer:
		return "server"
	case KindClient:
		return "client"
	}
	return "unknown"
}

// Peer names one end of a request in the mesh. Empty fields are not
// recorded.
type Peer struct {
	Workload  string // e.g. "ns/web-7d9f" or the workload's name
	Service   string // e.g. "ns/catalog"
	Namespace string
	Identity  string // SPIFFE ID, spiffe://<trust-domain>/ns/<ns>/sa/<sa>
}

// Bounds on request-derived values, so that a span's size does not
// depend on what a client sends.
const (
	maxPathLen    = 256
	maxHostLen    = 256
	maxMessageLen = 256
	maxNameLen    = 256
)

// Span is one side of one request in one proxy. A span is made by a
// Tracer's Start functions, filled by its setters while the request is
// carried, and handed to the exporter by End. A nil *Span is valid and
// does nothing, which is what a nil Tracer returns: the proxy can call
// the setters unconditionally.
//
// Setters and End are meant for the goroutine carrying the request; they
// do not lock. End may be called more than once (the first one counts),
// and setters after End change nothing that is exported.
type Span struct {
	t        *Tracer
	sc       SpanContext
	parent   SpanID
	kind     Kind
	recorded bool // sampled: End exports it
	ended    atomic.Bool

	start, end time.Time

	name        string
	method      string
	path        string
	host        string
	httpRoute   string
	protoMajor  int
	grpc        bool
	status      int // HTTP status, 0 when none
	grpcCode    int // -1 when none
	errMsg      string
	retries     int
	route       string
	protocol    string
	peerAddress string
	src, dst    Peer
}

// Context is the span's own context: what the next hop gets as parent.
func (s *Span) Context() SpanContext {
	if s == nil {
		return SpanContext{}
	}
	return s.sc
}

// Parent is the span's parent, invalid for the root of a trace.
func (s *Span) Parent() SpanID {
	if s == nil {
		return SpanID{}
	}
	return s.parent
}

// IsRecording reports whether the span is sampled and not yet ended: a
// caller can skip computing attributes for spans that are not.
func (s *Span) IsRecording() bool { return s != nil && s.recorded && !s.ended.Load() }

// Inject writes the span's context into h, in the formats the span's
// parent came in (W3C always): call it on the request to the next hop.
// StartRequest already does it on the request it was given.
func (s *Span) Inject(h http.Header) {
	if s == nil {
		return
	}
	inject(h, s.sc, s.parent)
}

// SetName replaces the span's default name ("{method} {http route}",
// the method alone without a route, or "{service}/{method}" for gRPC).
func (s *Span) SetName(name string) {
	if s.IsRecording() {
		s.name = bound(name, maxNameLen)
	}
}

// SetRequest records the method, the path (never the query string), the
// host, the HTTP version and whether it is gRPC. StartRequest calls it.
func (s *Span) SetRequest(r *http.Request) {
	if !s.IsRecording() {
		return
	}
	s.method = r.Method
	if r.URL != nil {
		s.path = bound(r.URL.Path, maxPathLen)
	}
	s.host = bound(r.Host, maxHostLen)
	s.protoMajor = r.ProtoMajor
	s.grpc = isGRPC(r.Header)
}

// SetHTTPRoute records the matched route template or prefix (http.route),
// which stays bounded where the path may not be.
func (s *Span) SetHTTPRoute(route string) {
	if s.IsRecording() {
		s.httpRoute = bound(route, maxPathLen)
	}
}

// SetRoute records the mesh route that carried the request, such as
// "HTTPRoute ns/name".
func (s *Span) SetRoute(route string) {
	if s.IsRecording() {
		s.route = route
	}
}

// SetProtocol records the mesh protocol of the port (http1, http2, grpc,
// tcp...).
func (s *Span) SetProtocol(p string) {
	if s.IsRecording() {
		s.protocol = p
	}
}

// SetSource records who sent the request.
func (s *Span) SetSource(p Peer) {
	if s.IsRecording() {
		s.src = p
	}
}

// SetDestination records where the request went.
func (s *Span) SetDestination(p Peer) {
	if s.IsRecording() {
		s.dst = p
	}
}

// SetPeerAddress records the address of the other side of the
// connection: the chosen endpoint outbound, the client inbound.
func (s *Span) SetPeerAddress(addr string) {
	if s.IsRecording() {
		s.peerAddress = bound(addr, maxHostLen)
	}
}

// SetRetries records how many times the request was tried again.
func (s *Span) SetRetries(n int) {
	if s.IsRecording() {
		s.retries = n
	}
}

// AddRetry counts one more try of the request.
func (s *Span) AddRetry() {
	if s.IsRecording() {
		s.retries++
	}
}

// SetHTTPStatus records the HTTP status of the response.
func (s *Span) SetHTTPStatus(code int) {
	if s.IsRecording() {
		s.status = code
	}
}

// SetGRPCStatus records the gRPC status code of the response.
func (s *Span) SetGRPCStatus(code int) {
	if s.IsRecording() {
		s.grpcCode = code
	}
}

// SetResponse records what a response says: its HTTP status and, for
// gRPC, the grpc-status from its headers (trailers-only) or its trailers
// (call it after the body was read for those).
func (s *Span) SetResponse(resp *http.Response) {
	if !s.IsRecording() || resp == nil {
		return
	}
	s.status = resp.StatusCode
	if code, ok := GRPCStatus(resp.Header, resp.Trailer); ok {
		s.grpcCode = code
	}
}

// SetError records that the request failed without a response (refused
// connection, timeout...): the span's status becomes an error.
func (s *Span) SetError(err error) {
	if err != nil && s.IsRecording() {
		s.errMsg = bound(err.Error(), maxMessageLen)
	}
}

// End closes the span now and queues it for export (if sampled). It never
// blocks: when the export queue is full the span is dropped and counted.
func (s *Span) End() { s.EndAt(time.Now()) }

// EndAt is End at a given time.
func (s *Span) EndAt(t time.Time) {
	if s == nil || s.ended.Swap(true) {
		return
	}
	s.end = t
	if s.recorded {
		s.t.enqueue(s)
	}
}

// GRPCStatus reads grpc-status from a response's trailers, or from its
// headers (a trailers-only response, or a handler's header map where
// trailers are set under http.TrailerPrefix).
func GRPCStatus(header, trailer http.Header) (int, bool) {
	for _, v := range [...][]string{trailer["Grpc-Status"], header["Grpc-Status"], header[http.TrailerPrefix+"Grpc-Status"]} {
		if len(v) == 1 {
			if code, ok := atoiSmall(v[0]); ok {
				return code, true
			}
		}
	}
	return 0, false
}

func atoiSmall(s string) (int, bool) {
	if len(s) == 0 || len(s) > 2 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

func isGRPC(h http.Header) bool {
	ct := h["Content-Type"]
	if len(ct) == 0 {
		return false
	}
	return ct[0] == "application/grpc" || strings.HasPrefix(ct[0], "application/grpc+") || strings.HasPrefix(ct[0], "application/grpc;")
}

// bound cuts s to at most n bytes, on a UTF-8 boundary.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
