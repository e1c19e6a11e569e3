// Package trace lets the proxy take part in distributed traces: it reads
// and writes trace context (W3C traceparent/tracestate and B3, single and
// multi header), records one span per request and side (server inbound,
// client outbound) with the mesh's attributes, samples, and exports the
// sampled spans to an OpenTelemetry collector over OTLP (gRPC or
// HTTP/protobuf), in batches, in the background.
//
// # In a request's life
//
// One Tracer per proxy, from New; Shutdown(ctx) when the proxy stops, to
// flush. A nil *Tracer is tracing off: it makes nil spans, on which every
// method is a no-op, and leaves trace headers untouched.
//
//   - Inbound (peer -> app): s := t.StartInbound(r) before r goes to the
//     app. It joins the context in r's headers (or starts a trace) and
//     rewrites them to carry s, so the app sees s as its parent.
//   - Outbound (app -> service): s := t.StartOutbound(r) before r is
//     routed. If the app forwarded the headers it received, as W3C and B3
//     ask of it, r carries the inbound span's context and s becomes its
//     child: the two sides of the app are linked with no state shared
//     between them. The peer proxy receives s's context.
//   - While carrying r: s.SetSource, SetDestination (SPIFFE IDs,
//     workloads, services), SetRoute, SetHTTPRoute, SetProtocol,
//     SetPeerAddress, AddRetry/SetRetries.
//   - When the answer is done: s.SetHTTPStatus / SetGRPCStatus /
//     SetResponse, or SetError for a failure without answer; s.End().
//
// Handler (for the listeners' http.Handlers) and Transport (for a
// RoundTripper) do the start, status and end around a handler or a
// transport, and put the span in the request's context (FromContext) for
// the layers beneath.
//
// Context goes on in the formats it came in: W3C always, and B3 (single
// or multi, as received) when the request carried B3. Malformed headers
// are ignored as if absent: a new trace starts, nothing fails.
//
// Sampling is parent-based: a joined trace keeps the decision it carries;
// a new trace (or a B3 one that left the decision to the receiver) is
// sampled at Config.SampleRatio, decided from the trace id so that all
// proxies agree. Spans that are not sampled are still propagated, with
// the sampled flag off, and cost no export.
//
// Export never blocks a request: End puts the span in a bounded queue and
// a full queue drops it (Stats().Dropped). One goroutine batches the
// queue (Config.BatchSize, BatchTimeout) and exports, retrying what OTLP
// calls retryable until ExportTimeout.
//
// # Dependencies, and why not the OpenTelemetry SDK
//
// The proxy runs beside every workload and its idle memory is a feature
// (at most 15 MB RSS). This package builds the OTLP protobuf messages of
// go.opentelemetry.io/proto/otlp itself and sends them with the gRPC and
// protobuf modules the proxy links already, rather than using the
// OpenTelemetry SDK (go.opentelemetry.io/otel/sdk, the otlptrace
// exporters and the contrib B3 propagator). What the proxy needs is
// narrow: two span kinds with a fixed set of attributes, two
// propagators, one sampler, one batcher. The SDK brings its general
// machinery for that: a span is a mutex-guarded object with attribute
// slices, events, links and a processor pipeline, propagation goes
// through a TextMapCarrier interface and a context per request, and
// export converts each span once more (a ReadOnlySpan snapshot, then the
// same protobuf messages). Here a span is one struct with fixed fields
// and strings the proxy already holds, turned into protobuf only in the
// exporter goroutine, off the request path.
//
// Measured when this package was written (a scratch copy of the proxy,
// same request: parse a traceparent, start a client span, set ten mesh
// attributes, inject, end):
//
//   - per request: this package 2 allocations, 512 B (see
//     BenchmarkRequest*); SDK 1.47 with the W3C and B3 propagators 29
//     allocations, 3.5 KB, and about ten times the time;
//   - weft-proxy binary: +0.43 MB with this package; +1.7 MB with the
//     SDK and its OTLP/gRPC exporter, whose current release would also
//     have moved the whole repository to a newer gRPC;
//   - heap of an idle tracer: about 40 KB either way (the SDK's cost is
//     per request, not at rest).
//
// The price is owning about 1,600 lines (without comments) that follow
// the W3C trace-context, B3 and OTLP specifications by hand; the OTLP
// messages stay the upstream ones, so any collector reads them, and the
// parsers are fuzzed. The otlp module is pinned at v1.6.0, the release
// built against the gRPC the repository uses. Its collector/trace/v1
// package also holds grpc-gateway handlers, so grpc-gateway's runtime is
// linked too (part of the 0.43 MB; code, not heap).
//
// This package must import neither the control plane (discovery, source,
// translate, identity's server side) nor Kubernetes packages, nor
// internal/proxy itself: the proxy imports it, and it takes its mesh
// attributes as plain strings so that it depends on no model type.
package trace
