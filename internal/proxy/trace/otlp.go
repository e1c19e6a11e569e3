package trace

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// ScopeName is the instrumentation scope of the spans a Tracer exports.
const ScopeName = "github.com/weftmesh/weft/internal/proxy/trace"

// Attribute keys. The HTTP, RPC, URL and network ones are OpenTelemetry
// semantic conventions; the weft.* ones are the mesh's own.
const (
	AttrHTTPMethod      = "http.request.method"
	AttrHTTPStatus      = "http.response.status_code"
	AttrHTTPRoute       = "http.route"
	AttrURLPath         = "url.path"
	AttrServerAddress   = "server.address"
	AttrProtocolVersion = "network.protocol.version"
	AttrPeerAddress     = "network.peer.address"
	AttrRPCSystem       = "rpc.system"
	AttrRPCService      = "rpc.service"
	AttrRPCMethod       = "rpc.method"
	AttrGRPCStatus      = "rpc.grpc.status_code"
	AttrRoute           = "weft.route"
	AttrProtocol        = "weft.protocol"
	AttrRetries         = "weft.retries"
	AttrSrcWorkload     = "weft.source.workload"
	AttrSrcService      = "weft.source.service"
	AttrSrcNamespace    = "weft.source.namespace"
	AttrSrcIdentity     = "weft.source.identity"
	AttrDstWorkload     = "weft.destination.workload"
	AttrDstService      = "weft.destination.service"
	AttrDstNamespace    = "weft.destination.namespace"
	AttrDstIdentity     = "weft.destination.identity"
)

func newResource(service string, attrs map[string]string) *resourcepb.Resource {
	if service == "" {
		service = "weft-proxy"
	}
	kvs := []*commonpb.KeyValue{str("service.name", service)}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if k != "service.name" {
			kvs = append(kvs, str(k, attrs[k]))
		}
	}
	return &resourcepb.Resource{Attributes: kvs}
}

// request turns a batch into one OTLP export request.
func (t *Tracer) request(batch []*Span) *coltracepb.ExportTraceServiceRequest {
	spans := make([]*tracepb.Span, len(batch))
	for i, s := range batch {
		spans[i] = s.proto()
	}
	return &coltracepb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: t.resource,
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: ScopeName},
			Spans: spans,
		}},
	}}}
}

// proto is the OTLP form of an ended span.
func (s *Span) proto() *tracepb.Span {
	p := &tracepb.Span{
		TraceId:           s.sc.TraceID[:],
		SpanId:            s.sc.SpanID[:],
		TraceState:        s.sc.TraceState,
		Name:              s.spanName(),
		Kind:              tracepb.Span_SPAN_KIND_SERVER,
		StartTimeUnixNano: uint64(s.start.UnixNano()),
		EndTimeUnixNano:   uint64(s.end.UnixNano()),
		Status:            s.otlpStatus(),
		// Sampled, and the parent (when there is one) came from another
		// process, through headers.
		Flags: 1 | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK),
	}
	if s.kind == KindClient {
		p.Kind = tracepb.Span_SPAN_KIND_CLIENT
	}
	if s.parent.IsValid() {
		p.ParentSpanId = s.parent[:]
		p.Flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	var a attrBuf
	a.str(AttrHTTPMethod, normalMethod(s.method))
	a.str(AttrURLPath, s.path)
	a.str(AttrServerAddress, s.host)
	a.str(AttrHTTPRoute, s.httpRoute)
	switch s.protoMajor {
	case 1:
		a.str(AttrProtocolVersion, "1.1")
	case 2:
		a.str(AttrProtocolVersion, "2")
	}
	if s.status != 0 {
		a.num(AttrHTTPStatus, s.status)
	}
	if s.grpc {
		a.str(AttrRPCSystem, "grpc")
		if svc, m, ok := grpcMethod(s.path); ok {
			a.str(AttrRPCService, svc)
			a.str(AttrRPCMethod, m)
		}
	}
	if s.grpcCode >= 0 {
		a.num(AttrGRPCStatus, s.grpcCode)
	}
	a.str(AttrPeerAddress, s.peerAddress)
	a.str(AttrRoute, s.route)
	a.str(AttrProtocol, s.protocol)
	if s.kind == KindClient || s.retries > 0 {
		a.num(AttrRetries, s.retries)
	}
	a.str(AttrSrcWorkload, s.src.Workload)
	a.str(AttrSrcService, s.src.Service)
	a.str(AttrSrcNamespace, s.src.Namespace)
	a.str(AttrSrcIdentity, s.src.Identity)
	a.str(AttrDstWorkload, s.dst.Workload)
	a.str(AttrDstService, s.dst.Service)
	a.str(AttrDstNamespace, s.dst.Namespace)
	a.str(AttrDstIdentity, s.dst.Identity)
	p.Attributes = a.build()
	return p
}

// spanName follows the semantic conventions: "{method} {route}" for
// HTTP, "{service}/{method}" for gRPC; never the raw path, which would
// make names unbounded.
func (s *Span) spanName() string {
	switch {
	case s.name != "":
		return s.name
	case s.grpc:
		if svc, m, ok := grpcMethod(s.path); ok {
			return svc + "/" + m
		}
	}
	m := normalMethod(s.method)
	switch {
	case m == "":
		return s.kind.String()
	case s.httpRoute != "":
		return m + " " + s.httpRoute
	}
	return m
}

// otlpStatus is the span's OTLP status: unset unless something failed. What
// counts as failed depends on the side: a 4xx is the client's error, not
// the server's, and a server's NOT_FOUND is an answer, not an error.
func (s *Span) otlpStatus() *tracepb.Status {
	errStatus := func(msg string) *tracepb.Status {
		return &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: msg}
	}
	switch {
	case s.errMsg != "":
		return errStatus(s.errMsg)
	case s.grpcCode > 0:
		if s.kind == KindClient || grpcServerError(s.grpcCode) {
			return errStatus("gRPC status " + grpcCodeName(s.grpcCode))
		}
	case s.grpcCode == 0:
	case s.status >= 500 || s.kind == KindClient && s.status >= 400:
		return errStatus("HTTP " + strconv.Itoa(s.status))
	}
	return nil
}

// grpcServerError: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL,
// UNAVAILABLE and DATA_LOSS, as the RPC conventions list for servers.
func grpcServerError(code int) bool {
	switch code {
	case 2, 4, 12, 13, 14, 15:
		return true
	}
	return false
}

var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
	"PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
	"UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func grpcCodeName(code int) string {
	if code >= 0 && code < len(grpcCodeNames) {
		return grpcCodeNames[code]
	}
	return strconv.Itoa(code)
}

// grpcMethod splits a gRPC path, /package.Service/Method.
func grpcMethod(path string) (service, method string, ok bool) {
	if !strings.HasPrefix(path, "/") {
		return "", "", false
	}
	service, method, ok = strings.Cut(path[1:], "/")
	return service, method, ok && service != "" && method != "" && !strings.Contains(method, "/")
}

// normalMethod keeps the known methods and names the others _OTHER, so
// that a client cannot put arbitrary text in spans.
func normalMethod(m string) string {
	switch m {
	case "", http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return m
	}
	return "_OTHER"
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// maxAttrs is at least the number of attributes proto can set.
const maxAttrs = 24

// attrBuf collects a span's attributes (on the stack), then builds them
// in five allocations of the exact size instead of three per attribute:
// the exporter's garbage is much of its cost.
type attrBuf struct {
	n, ints int
	keys    [maxAttrs]string
	strs    [maxAttrs]string
	nums    [maxAttrs]int64
	isNum   [maxAttrs]bool
}

// str adds a string attribute, unless v is empty.
func (a *attrBuf) str(k, v string) {
	if v != "" && a.n < maxAttrs {
		a.keys[a.n], a.strs[a.n] = k, v
		a.n++
	}
}

func (a *attrBuf) num(k string, v int) {
	if a.n < maxAttrs {
		a.keys[a.n], a.nums[a.n], a.isNum[a.n] = k, int64(v), true
		a.n++
		a.ints++
	}
}

func (a *attrBuf) build() []*commonpb.KeyValue {
	ptrs := make([]*commonpb.KeyValue, a.n)
	kvs := make([]commonpb.KeyValue, a.n)
	avs := make([]commonpb.AnyValue, a.n)
	svs := make([]commonpb.AnyValue_StringValue, a.n-a.ints)
	ivs := make([]commonpb.AnyValue_IntValue, a.ints)
	for i := range a.n {
		if a.isNum[i] {
			ivs[0].IntValue = a.nums[i]
			avs[i].Value, ivs = &ivs[0], ivs[1:]
		} else {
			svs[0].StringValue = a.strs[i]
			avs[i].Value, svs = &svs[0], svs[1:]
		}
		kvs[i].Key, kvs[i].Value = a.keys[i], &avs[i]
		ptrs[i] = &kvs[i]
	}
	return ptrs
}
