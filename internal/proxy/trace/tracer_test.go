package trace

import (
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// memExporter keeps what it is given; block, when set, holds every
// export until it is closed or the export's context ends.
type memExporter struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	calls int
	block chan struct{}
	fail  func(call int) error
}

func (e *memExporter) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) error {
	if e.block != nil {
		select {
		case <-e.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.fail != nil {
		if err := e.fail(e.calls); err != nil {
			return err
		}
	}
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			e.spans = append(e.spans, ss.Spans...)
		}
	}
	return nil
}

func (e *memExporter) Shutdown(context.Context) error { return nil }

func (e *memExporter) got() []*tracepb.Span {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*tracepb.Span(nil), e.spans...)
}

func newTestTracer(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Endpoint: "127.0.0.1:4317", SampleRatio: 1.5},
		{Endpoint: "127.0.0.1:4317", SampleRatio: -0.1},
		{Endpoint: "127.0.0.1:4317", SampleRatio: math.NaN()},
		{Endpoint: "127.0.0.1:4317", Protocol: "zipkin"},
		{Protocol: ProtocolGRPC},
		{Protocol: ProtocolHTTP, Endpoint: "127.0.0.1:4318"},
		{Protocol: ProtocolHTTP, Endpoint: "ftp://127.0.0.1/"},
		{Endpoint: "127.0.0.1:4317", QueueSize: -1},
	} {
		if tr, err := New(cfg); err == nil {
			_ = tr.Shutdown(context.Background())
			t.Errorf("New(%+v) accepted", cfg)
		} else if !strings.HasPrefix(err.Error(), "trace: ") {
			t.Errorf("error without context: %v", err)
		}
	}
}

func TestNilTracerLeavesRequestsAlone(t *testing.T) {
	var tr *Tracer
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("Traceparent", "garbage")
	s := tr.StartInbound(r)
	s.SetRoute("x")
	s.AddRetry()
	s.SetError(errors.New("x"))
	s.End()
	if s != nil || r.Header.Get("Traceparent") != "garbage" || len(r.Header) != 1 {
		t.Errorf("nil tracer changed the request: %v", r.Header)
	}
	next := http.NotFoundHandler()
	if h := tr.Handler(KindServer, next); h == nil {
		t.Error("nil handler")
	}
	if tr.Transport(http.DefaultTransport) != http.DefaultTransport {
		t.Error("nil tracer wrapped the transport")
	}
	if err := tr.Shutdown(context.Background()); err != nil || tr.Stats() != (Stats{}) {
		t.Error("nil tracer shutdown")
	}
}

func TestSampling(t *testing.T) {
	exp := &memExporter{}
	quarter := newTestTracer(t, Config{Exporter: exp, SampleRatio: 0.25})
	other := newTestTracer(t, Config{Exporter: exp, SampleRatio: 0.25})
	none := newTestTracer(t, Config{Exporter: exp, SampleRatio: 0})
	const n = 20000
	sampled := 0
	for range n {
		s := quarter.Start(SpanContext{}, KindServer)
		if s.Context().IsSampled() {
			sampled++
		}
		// Same ratio, same trace: the same decision in every proxy.
		b3 := SpanContext{TraceID: s.Context().TraceID, SpanID: s.Context().SpanID, Formats: FormatB3Single}
		if other.Start(b3, KindClient).Context().IsSampled() != s.Context().IsSampled() {
			t.Fatal("two proxies with one ratio decided differently on a deferred trace")
		}
	}
	if sampled < n/4-n/50 || sampled > n/4+n/50 {
		t.Errorf("%d of %d sampled at ratio 0.25", sampled, n)
	}
	tid, sid := mustTID(t, tid32), mustSID(t, sid16)
	for _, tc := range []struct {
		parent SpanContext
		want   bool
	}{
		{SpanContext{}, false},
		{SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingAccept}, true},
		{SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDebug}, true},
		{SpanContext{Sampling: SamplingAccept}, true}, // "b3: 1": a new trace, sampled
		{SpanContext{Sampling: SamplingDebug}, true},
	} {
		s := none.Start(tc.parent, KindServer)
		if s.Context().IsSampled() != tc.want || s.IsRecording() != tc.want {
			t.Errorf("ratio 0, parent %+v: sampled %v", tc.parent, s.Context().IsSampled())
		}
		if tc.parent.IsValid() && (s.Context().TraceID != tid || s.Parent() != sid || s.Context().SpanID == sid) {
			t.Errorf("not joined: %+v", s.Context())
		}
	}
	all := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1})
	if s := all.Start(SpanContext{TraceID: tid, SpanID: sid, Sampling: SamplingDrop}, KindServer); s.IsRecording() {
		t.Error("ratio 1 overrode a parent's no")
	}
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	exp := &memExporter{block: make(chan struct{})}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1, QueueSize: 4, BatchSize: 1})
	start := time.Now()
	for range 100 {
		tr.Start(SpanContext{}, KindClient).End()
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("ending 100 spans took %v", d)
	}
	st := tr.Stats()
	if st.Spans != 100 || st.Dropped < 100-4-1 {
		t.Errorf("stats with a stuck exporter: %+v", st)
	}
	close(exp.block)
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	st = tr.Stats()
	if st.Exported+st.Dropped != 100 || st.Exported != uint64(len(exp.got())) {
		t.Errorf("after shutdown: %+v, %d exported", st, len(exp.got()))
	}
	tr.Start(SpanContext{}, KindClient).End()
	if tr.Stats().Dropped != st.Dropped+1 {
		t.Error("a span ended after shutdown was not counted as dropped")
	}
}

func TestShutdownFlushes(t *testing.T) {
	exp := &memExporter{}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1, BatchSize: 4, BatchTimeout: time.Hour})
	for range 10 {
		tr.Start(SpanContext{}, KindServer).End()
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(exp.got()); got != 10 {
		t.Errorf("%d spans exported at shutdown, want 10", got)
	}
	if err := tr.Flush(context.Background()); err == nil {
		t.Error("flush after shutdown succeeded")
	}
}

func TestFlush(t *testing.T) {
	exp := &memExporter{}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1, BatchTimeout: time.Hour})
	for range 3 {
		tr.Start(SpanContext{}, KindServer).End()
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(exp.got()); got != 3 {
		t.Errorf("%d spans after flush, want 3", got)
	}
}

func TestShutdownGivesUpAtDeadline(t *testing.T) {
	exp := &memExporter{block: make(chan struct{})} // never answers
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1, BatchSize: 1, ExportTimeout: time.Hour, Logger: quiet})
	tr.Start(SpanContext{}, KindServer).End()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := tr.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown = %v, want the deadline", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("shutdown took %v", d)
	}
}

func TestExportRetriesRetryable(t *testing.T) {
	exp := &memExporter{fail: func(call int) error {
		if call < 3 {
			return &RetryableError{Err: errors.New("unavailable")}
		}
		return nil
	}}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1})
	tr.Start(SpanContext{}, KindServer).End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Exported != 1 || st.Failed != 0 || exp.calls != 3 {
		t.Errorf("%+v after %d calls", st, exp.calls)
	}
}

func TestHTTPExportErrors(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case strings.HasPrefix(r.URL.Path, "/bad"):
			w.Header().Set("Content-Type", "text/plain")
			http.Error(w, "no such tenant", http.StatusBadRequest)
		case n == 1:
			w.WriteHeader(http.StatusServiceUnavailable) // retried
		}
	}))
	defer srv.Close()

	tr := newTestTracer(t, Config{Endpoint: srv.URL, Protocol: ProtocolHTTP, SampleRatio: 1})
	tr.Start(SpanContext{}, KindServer).End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Exported != 1 || calls != 2 {
		t.Errorf("503 then 200: %+v after %d calls", st, calls)
	}

	exp, err := NewHTTPExporter(srv.URL+"/bad/v1/traces", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Export(context.Background(), &coltracepb.ExportTraceServiceRequest{})
	var re *RetryableError
	if err == nil || errors.As(err, &re) || !strings.Contains(err.Error(), "no such tenant") || !strings.Contains(err.Error(), "/bad/v1/traces") {
		t.Errorf("400: %v", err)
	}
}

func TestGRPCExportToNobodyFailsAndCounts(t *testing.T) {
	// A port nothing listens on: the export fails, is counted, and the
	// proxy's requests never notice.
	tr := newTestTracer(t, Config{Endpoint: "127.0.0.1:1", SampleRatio: 1, ExportTimeout: 300 * time.Millisecond, Logger: quiet})
	tr.Start(SpanContext{}, KindServer).End()
	if err := tr.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Failed != 1 || st.Exported != 0 {
		t.Errorf("%+v", st)
	}
}

func TestSpanStatusAndName(t *testing.T) {
	exp := &memExporter{}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1})
	cases := []struct {
		kind   Kind
		method string
		path   string
		ct     string
		set    func(*Span)
		name   string
		err    bool
		msg    string
	}{
		{KindServer, "GET", "/a", "", func(s *Span) { s.SetHTTPStatus(404) }, "GET", false, ""},
		{KindClient, "GET", "/a", "", func(s *Span) { s.SetHTTPStatus(404) }, "GET", true, "HTTP 404"},
		{KindServer, "POST", "/a", "", func(s *Span) { s.SetHTTPStatus(500); s.SetHTTPRoute("/a") }, "POST /a", true, "HTTP 500"},
		{KindServer, "BREW", "/a", "", func(s *Span) { s.SetHTTPStatus(200) }, "_OTHER", false, ""},
		{KindServer, "POST", "/shop.Cart/Add", "application/grpc", func(s *Span) { s.SetHTTPStatus(200); s.SetGRPCStatus(5) }, "shop.Cart/Add", false, ""},
		{KindClient, "POST", "/shop.Cart/Add", "application/grpc+proto", func(s *Span) { s.SetHTTPStatus(200); s.SetGRPCStatus(5) }, "shop.Cart/Add", true, "gRPC status NOT_FOUND"},
		{KindServer, "POST", "/shop.Cart/Add", "application/grpc", func(s *Span) { s.SetHTTPStatus(200); s.SetGRPCStatus(14) }, "shop.Cart/Add", true, "gRPC status UNAVAILABLE"},
		{KindServer, "POST", "/shop.Cart/Add", "application/grpc", func(s *Span) { s.SetHTTPStatus(200); s.SetGRPCStatus(0) }, "shop.Cart/Add", false, ""},
		{KindClient, "GET", "/a", "", func(s *Span) { s.SetError(errors.New("connection refused")); s.SetName("custom") }, "custom", true, "connection refused"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://svc"+c.path+"?q=1", nil)
		if c.ct != "" {
			r.Header.Set("Content-Type", c.ct)
		}
		s := tr.StartRequest(r, c.kind)
		c.set(s)
		s.End()
		s.SetHTTPStatus(999) // after End: ignored
		p := s.proto()
		if p.Name != c.name || (p.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR) != c.err || p.Status.GetMessage() != c.msg {
			t.Errorf("%v %s %s: name %q status %v, want %q error=%v %q", c.kind, c.method, c.path, p.Name, p.Status, c.name, c.err, c.msg)
		}
		if c.ct != "" && (attr(p.Attributes, AttrRPCSystem) != "grpc" || attr(p.Attributes, AttrRPCService) != "shop.Cart" || attr(p.Attributes, AttrRPCMethod) != "Add") {
			t.Errorf("gRPC attributes: %v", p.Attributes)
		}
	}
	// Request-derived values are bounded.
	long := httptest.NewRequest("GET", "/"+strings.Repeat("é", 300), nil)
	long.Host = strings.Repeat("h", 1000)
	s := tr.StartRequest(long, KindServer)
	s.SetError(errors.New(strings.Repeat("e", 1000)))
	s.End()
	p := s.proto()
	if len(attr(p.Attributes, AttrURLPath)) > maxPathLen || len(attr(p.Attributes, AttrServerAddress)) > maxHostLen || len(p.Status.Message) > maxMessageLen {
		t.Errorf("unbounded: %d %d %d", len(attr(p.Attributes, AttrURLPath)), len(attr(p.Attributes, AttrServerAddress)), len(p.Status.Message))
	}
	if !strings.HasSuffix(attr(p.Attributes, AttrURLPath), "é") {
		t.Error("path cut inside a character")
	}
}

// TestTransportGRPCTrailers: a client span through Transport ends when
// the body is done and reads grpc-status from the trailers.
func TestTransportGRPCTrailers(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Traceparent") == "" {
			t.Error("no traceparent reached the server")
		}
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Trailer", "Grpc-Status")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte{0, 0, 0, 0, 0})
		w.Header().Set("Grpc-Status", "14")
	}))
	defer srv.Close()
	exp := &memExporter{}
	tr := newTestTracer(t, Config{Exporter: exp, SampleRatio: 1})
	client := &http.Client{Transport: tr.Transport(http.DefaultTransport)}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/shop.Cart/Add", strings.NewReader(""))
	req.Header.Set("Content-Type", "application/grpc")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Header.Get("Traceparent") != "" {
		t.Error("Transport changed the caller's request")
	}
	if tr.Stats().Spans != 0 {
		t.Error("span ended before the body was read")
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := exp.got()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	if p := spans[0]; p.Kind != tracepb.Span_SPAN_KIND_CLIENT || attr(p.Attributes, AttrGRPCStatus) != "14" || p.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("span %v", p)
	}

	// A transport error ends the span at once, as an error.
	_, err = client.Get("http://127.0.0.1:1/")
	if err == nil {
		t.Fatal("request to a closed port succeeded")
	}
	if err := tr.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if spans := exp.got(); len(spans) != 2 || spans[1].Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || spans[1].Status.Message == "" {
		t.Errorf("spans %v", spans)
	}
}
