package app

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"
)

// traceHeaders carry a request's trace context: W3C Trace Context and B3
// (single and multi header). The demo does no tracing of its own, but it
// forwards these from the request it serves onto the calls it makes while
// serving it, as both specifications ask of an application. That is all
// the mesh needs: the sidecar rewrites them on the way in to name its
// server span, so the sidecar's client span for the outgoing call becomes
// that span's child, and one trace runs through every service.
var traceHeaders = []string{
	"traceparent", "tracestate",
	"b3",
	"X-B3-TraceId", "X-B3-SpanId", "X-B3-ParentSpanId", "X-B3-Sampled", "X-B3-Flags",
}

// forwardTraceHeaders copies the trace headers of in, the request being
// served, onto out, a request made to serve it. Nothing else is copied:
// the other headers of a request are its own.
func forwardTraceHeaders(out, in http.Header) {
	for _, name := range traceHeaders {
		if vs := in.Values(name); len(vs) > 0 {
			out[http.CanonicalHeaderKey(name)] = append([]string(nil), vs...)
		}
	}
}

// withTraceMetadata returns ctx with the trace headers of in added to the
// outgoing gRPC metadata, where gRPC sends them as HTTP/2 headers of the
// call, under the same (lower-case) names.
func withTraceMetadata(ctx context.Context, in http.Header) context.Context {
	var kv []string
	for _, name := range traceHeaders {
		for _, v := range in.Values(name) {
			kv = append(kv, strings.ToLower(name), v)
		}
	}
	if len(kv) == 0 {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, kv...)
}
