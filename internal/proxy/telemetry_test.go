package proxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	prommodel "github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/tap"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// scrape parses a proxy's /metrics with the Prometheus text parser.
func scrape(t *testing.T, p *proxy.Proxy) map[string]*dto.MetricFamily {
	t.Helper()
	rec := httptest.NewRecorder()
	p.Metrics().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	parser := expfmt.NewTextParser(prommodel.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return families
}

// sum adds the values of a family's series whose labels include want.
func sum(families map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var total float64
	for _, m := range families[name].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.GetCounter().GetValue()
		case m.Gauge != nil:
			total += m.GetGauge().GetValue()
		case m.Histogram != nil:
			total += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return total
}

// statusApp answers with the status the query asks for.
func statusApp(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.URL.Query().Get("status"))
	if err != nil {
		code = http.StatusOK
	}
	w.WriteHeader(code)
}

// TestGoldenSignals sends known requests through a client proxy and a
// server proxy and checks that each side's metrics count exactly them.
func TestGoldenSignals(t *testing.T) {
	appPort := serveHTTP(t, http.HandlerFunc(statusApp))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	c := newClient(t, proxy.Options{}, svc, []uint32{80}, s.endpoint(map[uint32]uint32{80: appPort}))
	client := h1Client()
	before := scrape(t, c.proxy)
	const ok, failed, notFound = 23, 7, 4
	for i := range ok + failed + notFound {
		status := http.StatusOK
		switch {
		case i < failed:
			status = http.StatusServiceUnavailable
		case i < failed+notFound:
			status = http.StatusNotFound
		}
		resp, err := client.Do(mustRequest("GET", fmt.Sprintf("http://%s/items/%d?status=%d", c.addr(80), i, status)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != status {
			t.Fatalf("request %d: %d, want %d", i, resp.StatusCode, status)
		}
	}
	const total = ok + failed + notFound
	// A request is counted when its handler returns, which may be just
	// after the client has its answer: wait for both sides' last.
	requests := func(p *proxy.Proxy, direction string) float64 {
		return sum(scrape(t, p), "weft_requests_total", map[string]string{"direction": direction})
	}
	waitFor(t, "every request counted", func() bool {
		return requests(c.proxy, "outbound")-sum(before, "weft_requests_total", map[string]string{"direction": "outbound"}) >= total &&
			requests(s.proxy, "inbound") >= total
	})
	out, in := scrape(t, c.proxy), scrape(t, s.proxy)
	peers := map[string]string{"destination_service": "demo/api", "destination_workload": "demo/api-0", "protocol": "http1"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range peers {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		desc     string
		families map[string]*dto.MetricFamily
		name     string
		labels   map[string]string
		want     float64
	}{
		{"outbound requests", out, "weft_requests_total", with(map[string]string{"direction": "outbound", "source_workload": c.wl.Ref.String()}), total},
		{"outbound failures", out, "weft_responses_total", with(map[string]string{"direction": "outbound", "status_code": "503", "status_class": "5xx", "classification": "failure"}), failed},
		{"outbound 404 is no failure", out, "weft_responses_total", with(map[string]string{"direction": "outbound", "status_code": "404", "classification": "success"}), notFound},
		{"outbound latencies", out, "weft_response_latency_seconds", with(map[string]string{"direction": "outbound"}), total},
		{"inbound requests", in, "weft_requests_total", map[string]string{"direction": "inbound", "destination_workload": "demo/api-0", "protocol": "http1"}, total},
		{"inbound successes", in, "weft_responses_total", map[string]string{"direction": "inbound", "classification": "success"}, ok + notFound},
		{"nothing in flight", out, "weft_requests_in_flight", map[string]string{"direction": "outbound"}, 0},
	}
	for _, tc := range tests {
		got := sum(tc.families, tc.name, tc.labels)
		if tc.labels["direction"] == "outbound" {
			got -= sum(before, tc.name, tc.labels)
		}
		if got != tc.want {
			t.Errorf("%s: %s%v = %v, want %v", tc.desc, tc.name, tc.labels, got, tc.want)
		}
	}
	if got := sum(out, "weft_tcp_connections_opened_total", map[string]string{"direction": "outbound", "destination_service": "demo/api"}); got < 1 {
		t.Errorf("outbound TCP connections opened = %v, want at least the client's", got)
	}
	if got := sum(in, "weft_tcp_bytes_total", map[string]string{"direction": "inbound", "flow": "received"}); got <= 0 {
		t.Errorf("inbound bytes received = %v", got)
	}
	for _, name := range []string{"weft_requests_total", "weft_responses_total"} {
		for _, m := range out[name].GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "/items/") {
					t.Errorf("%s has a path label %s=%s: cardinality would be unbounded", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// TestTapSeesRequests: a tap on the client proxy streams the requests it
// carries, without their query strings.
func TestTapSeesRequests(t *testing.T) {
	appPort := serveHTTP(t, http.HandlerFunc(statusApp))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	c := newClient(t, proxy.Options{}, svc, []uint32{80}, s.endpoint(map[uint32]uint32{80: appPort}))
	srv := httptest.NewServer(http.HandlerFunc(c.proxy.Tap))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"?path=/tapped", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	client := h1Client()
	go func() {
		for ctx.Err() == nil {
			r, err := client.Do(mustRequest("GET", "http://"+c.addr(80)+"/tapped/1?secret=x&status=503"))
			if err == nil {
				r.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	var got *tap.Event
	err = tap.Read(ctx, resp.Body, func(r tap.Record) error {
		if r.Event != nil {
			got = r.Event
			cancel()
		}
		return nil
	})
	if got == nil {
		t.Fatalf("no event: %v", err)
	}
	if got.Path != "/tapped/1" || got.Status != 503 || got.Direction != "outbound" || got.DestinationService != "demo/api" ||
		got.DestinationWorkload != "demo/api-0" || got.Method != "GET" {
		t.Errorf("event %+v", got)
	}
}

// lockedBuffer is an io.Writer the proxy's goroutines and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAccessLog: off by default; on for a workload that asks, one JSON
// object per request, without the query string.
func TestAccessLog(t *testing.T) {
	appPort := serveHTTP(t, http.HandlerFunc(statusApp))
	s := newServer(t, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	ep := s.endpoint(map[uint32]uint32{80: appPort})
	var logged lockedBuffer
	c := newClient(t, proxy.Options{AccessLog: &logged}, svc, []uint32{80}, ep)
	client := h1Client()
	get := func(path string) {
		t.Helper()
		resp, err := client.Do(mustRequest("GET", "http://"+c.addr(80)+path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/quiet")
	if logged.String() != "" {
		t.Fatalf("access log written while off: %s", logged.String())
	}
	// A new workload, as the control plane sends: the one in force may
	// still be read by the last request's logging.
	wl := *c.wl
	wl.AccessLog = true
	c.wl = &wl
	if err := c.apply(svc, ep); err != nil {
		t.Fatal(err)
	}
	get("/logged/1?token=secret&status=503")
	get("/logged/2")
	// A request is logged when its handler returns, which may be just
	// after the client has its answer.
	waitFor(t, "two access log lines", func() bool { return strings.Count(logged.String(), "\n") >= 2 })
	lines := strings.Split(strings.TrimSpace(logged.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log has %d lines, want 2:\n%s", len(lines), logged.String())
	}
	var first struct {
		Msg, Direction, Method, Path, Classification string
		Status                                       int
		Latency                                      float64 `json:"latency_ms"`
		DestinationWorkload                          string  `json:"destination_workload"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[0])
	}
	if first.Msg != "request" || first.Direction != "outbound" || first.Method != "GET" || first.Path != "/logged/1" ||
		first.Status != 503 || first.Classification != "failure" || first.DestinationWorkload != "demo/api-0" {
		t.Errorf("first entry %+v from %s", first, lines[0])
	}
	if strings.Contains(logged.String(), "secret") {
		t.Errorf("the query string reached the access log: %s", lines[0])
	}
}

// spanSink is an OTLP exporter that keeps the spans it gets.
type spanSink struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (s *spanSink) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			s.spans = append(s.spans, ss.GetSpans()...)
		}
	}
	return nil
}

func (s *spanSink) Shutdown(context.Context) error { return nil }

func attr(sp *tracepb.Span, key string) string {
	for _, kv := range sp.GetAttributes() {
		if kv.GetKey() == key {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTracing: a request the app sends with a traceparent gets a client
// span in the calling proxy and a server span in the called one, in the
// app's trace, each the child of the one before, and the app behind the
// called proxy sees the server span as its parent.
func TestTracing(t *testing.T) {
	var seen lockedBuffer
	appPort := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Write([]byte(r.Header.Get("Traceparent")))
	}))
	sink := &spanSink{}
	tracer := func() *trace.Tracer {
		tr, err := trace.New(trace.Config{Exporter: sink, SampleRatio: 1, BatchTimeout: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Shutdown(context.Background()) })
		return tr
	}
	serverTracer, clientTracer := tracer(), tracer()
	s := newServerWith(t, proxy.Options{Tracer: serverTracer}, "api-0", model.WorkloadPort{Port: appPort, Protocol: model.ProtocolHTTP1})
	svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1})
	c := newClient(t, proxy.Options{Tracer: clientTracer}, svc, []uint32{80}, s.endpoint(map[uint32]uint32{80: appPort}))
	const traceID, appSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req := mustRequest("GET", "http://"+c.addr(80)+"/traced?q=1")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+appSpan+"-01")
	resp, err := h1Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, tr := range []*trace.Tracer{clientTracer, serverTracer} {
		// A span ends when the proxy's handler returns, just after the
		// client has the answer.
		waitFor(t, "the span ended", func() bool { return tr.Stats().Spans > 0 })
		if err := tr.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	if len(sink.spans) != 2 {
		t.Fatalf("%d spans, want the client's and the server's", len(sink.spans))
	}
	var client, server *tracepb.Span
	for _, sp := range sink.spans {
		switch sp.GetKind() {
		case tracepb.Span_SPAN_KIND_CLIENT:
			client = sp
		case tracepb.Span_SPAN_KIND_SERVER:
			server = sp
		}
	}
	if client == nil || server == nil {
		t.Fatalf("spans %v", sink.spans)
	}
	hex := func(b []byte) string { return fmt.Sprintf("%x", b) }
	if hex(client.GetTraceId()) != traceID || hex(server.GetTraceId()) != traceID {
		t.Errorf("trace ids %s %s, want the app's %s", hex(client.GetTraceId()), hex(server.GetTraceId()), traceID)
	}
	if hex(client.GetParentSpanId()) != appSpan {
		t.Errorf("client span's parent %s, want the app's span %s", hex(client.GetParentSpanId()), appSpan)
	}
	if hex(server.GetParentSpanId()) != hex(client.GetSpanId()) {
		t.Errorf("server span's parent %s, want the client span %s", hex(server.GetParentSpanId()), hex(client.GetSpanId()))
	}
	if want := "00-" + traceID + "-" + hex(server.GetSpanId()) + "-01"; seen.String() != want {
		t.Errorf("the app got traceparent %q, want the server span's %q", seen.String(), want)
	}
	for _, sp := range sink.spans {
		for _, kv := range sp.GetAttributes() {
			if strings.Contains(kv.GetValue().GetStringValue(), "q=1") {
				t.Errorf("span %s attribute %s carries the query string", sp.GetName(), kv.GetKey())
			}
		}
	}
	if got := attr(client, trace.AttrDstWorkload); got != "demo/api-0" {
		t.Errorf("client span's destination workload %q; attributes %v", got, client.GetAttributes())
	}
}
