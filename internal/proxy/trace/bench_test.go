package trace

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// stuck holds every export until its context ends: the benchmarks of the
// request path then measure that path alone (queue full, spans dropped
// at End, which costs what queueing them costs), not the exporter
// goroutine competing for the same cores; BenchmarkExportPerSpan
// measures that one.
type stuck struct{}

func (stuck) Export(ctx context.Context, _ *coltracepb.ExportTraceServiceRequest) error {
	<-ctx.Done()
	return ctx.Err()
}
func (stuck) Shutdown(context.Context) error { return nil }

var quiet = slog.New(slog.DiscardHandler)

// benchRequest is what the proxy's per-request path does with a tracer:
// start the span from the request's headers (parse), rewrite them
// (inject), set the mesh attributes, end it (queue for export).
func benchRequest(b *testing.B, ratio float64, h http.Header) {
	tr, err := New(Config{Exporter: stuck{}, SampleRatio: ratio, QueueSize: 1024, BatchSize: 1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() { _ = tr.Shutdown(ctx) }()
	r := httptest.NewRequest(http.MethodGet, "http://catalog.default:8080/items/42", nil)
	src := Peer{Workload: "web-0", Service: "default/web", Identity: "spiffe://cluster.local/ns/default/sa/web"}
	dst := Peer{Service: "default/catalog", Identity: "spiffe://cluster.local/ns/default/sa/catalog"}
	b.ReportAllocs()
	for b.Loop() {
		for k, v := range h {
			r.Header[k] = v
		}
		s := tr.StartOutbound(r)
		s.SetSource(src)
		s.SetDestination(dst)
		s.SetRoute("HTTPRoute default/catalog")
		s.SetProtocol("http1")
		s.SetHTTPStatus(200)
		s.End()
	}
}

func BenchmarkRequestW3CSampled(b *testing.B) {
	benchRequest(b, 1, http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"}, "Tracestate": {"rojo=00f067aa0ba902b7"}})
}

func BenchmarkRequestW3CNotSampled(b *testing.B) {
	benchRequest(b, 1, http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-00"}})
}

func BenchmarkRequestB3MultiSampled(b *testing.B) {
	benchRequest(b, 1, http.Header{"X-B3-Traceid": {tid32}, "X-B3-Spanid": {sid16}, "X-B3-Sampled": {"1"}})
}

func BenchmarkRequestNewTrace1Percent(b *testing.B) {
	benchRequest(b, 0.01, nil)
}

func BenchmarkExtractW3C(b *testing.B) {
	h := http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"}, "Tracestate": {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}}
	b.ReportAllocs()
	for b.Loop() {
		if !Extract(h).IsValid() {
			b.Fatal("invalid")
		}
	}
}

func BenchmarkInjectW3C(b *testing.B) {
	sc := Extract(http.Header{"Traceparent": {"00-" + tid32 + "-" + sid16 + "-01"}})
	h := http.Header{"Traceparent": {""}}
	b.ReportAllocs()
	for b.Loop() {
		Inject(h, sc)
	}
}

// BenchmarkExportPerSpan is the exporter goroutine's cost per span, off
// the request path: OTLP conversion and protobuf encoding of a batch of
// 512 spans.
func BenchmarkExportPerSpan(b *testing.B) {
	tr, err := New(Config{Exporter: stuck{}, SampleRatio: 1, Logger: quiet, ServiceName: "web", Resource: map[string]string{"weft.workload": "web-0"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() { _ = tr.Shutdown(ctx) }()
	batch := make([]*Span, 512)
	for i := range batch {
		r := httptest.NewRequest(http.MethodGet, "http://catalog.default:8080/items/42", nil)
		s := tr.Start(SpanContext{}, KindClient)
		s.SetRequest(r)
		s.SetSource(Peer{Workload: "web-0", Service: "default/web", Identity: "spiffe://cluster.local/ns/default/sa/web"})
		s.SetDestination(Peer{Service: "default/catalog", Identity: "spiffe://cluster.local/ns/default/sa/catalog"})
		s.SetRoute("HTTPRoute default/catalog")
		s.SetHTTPStatus(200)
		s.end = s.start
		batch[i] = s
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(tr.request(batch)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/span")
}
