//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// TestTracing runs `weft up --demo` with its proxies exporting spans to an
// OTLP receiver in this test, once over gRPC and once over HTTP, and sends
// requests to web through the mesh carrying a trace context in W3C and in
// B3 multi-header form. For each, the receiver must get one trace with a
// span per proxy and side, each the child of the one before, all the way
// from the load generator's proxy through web and catalog to stock:
//
//	caller's span (this test's traceparent or X-B3-SpanId)
//	 -> loadgen's proxy, client (the test calls web at loadgen's outbound port)
//	 -> web's proxy, server -> [web forwards the trace headers]
//	 -> web's proxy, client -> catalog's proxy, server -> [catalog forwards them as gRPC metadata]
//	 -> catalog's proxy, client -> stock's proxy, server (once per stock lookup)
//
// Strict mTLS keeps anyone without a mesh certificate out of web's inbound
// port, so the test goes in as the load generator does.
//
// The two runs also use the sample ratio both ways: at 1 the load
// generator's own requests, which carry no context, start recorded
// traces; at 0 they start none, and only the traces this test sends
// sampled are recorded (parent-based), while one it sends not sampled is
// not recorded at either ratio.
func TestTracing(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		ratio    string
	}{
		{protocol: "grpc", ratio: "1"},
		{protocol: "http", ratio: "0"},
	} {
		t.Run("otlp "+tc.protocol+" sample ratio "+tc.ratio, func(t *testing.T) {
			rcv := &otlpReceiver{}
			var collector string
			if tc.protocol == "grpc" {
				collector = rcv.serveGRPC(t)
			} else {
				collector = rcv.serveHTTP(t)
			}
			d := startTracedDemo(t, "--trace-collector", collector, "--trace-protocol", tc.protocol, "--trace-sample-ratio", tc.ratio)
			// A route on web's calls to catalog, for spans to name: all of
			// them to catalog v1, by a path prefix.
			d.apply(t, demoObject{"catalog-traced.yaml", "HTTPRoute", "catalog-traced", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-traced, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /products}}]
    backendRefs: [{name: catalog-v1, port: 80}]
`})

			// Query strings stay out of spans: it could be a secret.
			url := d.webURL + "?token=e2e-secret"
			unsampled := newTraceID(t)
			w3c, w3cParent := newTraceID(t), newSpanID(t)
			b3, b3Parent := newTraceID(t), newSpanID(t)
			// Sent first: each proxy exports in the order spans end, so by
			// the time the later traces are in, any span of this one would
			// be too.
			d.tracedGet(t, url, "traceparent", "00-"+unsampled+"-"+newSpanID(t)+"-00")
			products := d.tracedGet(t, url, "traceparent", "00-"+w3c+"-"+w3cParent+"-01", "tracestate", "e2e=w3c")
			if n := d.tracedGet(t, url, "X-B3-TraceId", b3, "X-B3-SpanId", b3Parent, "X-B3-Sampled", "1"); n != products {
				t.Fatalf("web answered %d products, then %d", products, n)
			}
			// loadgen's client span, web's two, catalog's server span; then
			// per lookup of a product's stock, catalog's client span and
			// stock's server span.
			want := 4 + 2*products
			start := time.Now()
			eventually(t, 20*time.Second, "the receiver gets both traces", func() error {
				for _, id := range []string{w3c, b3} {
					if n := len(rcv.trace(id)); n < want {
						return fmt.Errorf("%d spans of trace %s, want %d (%d spans received in all):%s", n, id, want, len(rcv.all()), describe(rcv.trace(id)))
					}
				}
				return nil
			})
			t.Logf("OTLP/%s: both traces in %s after the last request's answer; %d spans received in all, from %d exports",
				tc.protocol, time.Since(start).Round(time.Millisecond), len(rcv.all()), rcv.exportCount())

			checkTrace(t, "W3C", rcv.trace(w3c), w3cParent, "e2e=w3c", products)
			checkTrace(t, "B3 multi", rcv.trace(b3), b3Parent, "", products)
			if got := rcv.trace(unsampled); len(got) != 0 {
				t.Errorf("%d spans of the trace sent not sampled, want none: %v", len(got), got)
			}
			for _, s := range rcv.all() {
				for _, kv := range s.Attributes {
					if v := kv.GetValue().GetStringValue(); strings.Contains(v, "e2e-secret") || strings.Contains(v, "?") {
						t.Errorf("span %s of %s has %s=%q: a query string", s.Name, s.service, kv.Key, v)
					}
				}
			}

			// The load generator's requests start traces of their own at its
			// proxy: recorded at ratio 1, not at 0.
			others := map[string]bool{}
			for _, s := range rcv.all() {
				if id := hex.EncodeToString(s.TraceId); id != w3c && id != b3 {
					others[id] = true
					if tc.ratio == "1" && s.service == "demo/loadgen-0" && len(s.ParentSpanId) != 0 {
						t.Errorf("loadgen's proxy's span %s has parent %x: the load generator sends no context, its proxy starts the trace", s.Name, s.ParentSpanId)
					}
				}
			}
			t.Logf("sample ratio %s: %d other traces recorded (the load generator's, and the test's own readiness checks)", tc.ratio, len(others))
			if tc.ratio == "1" && len(others) == 0 {
				t.Errorf("no trace of the load generator's requests recorded at sample ratio 1")
			}
			if tc.ratio == "0" && len(others) != 0 {
				t.Errorf("%d traces nobody sampled recorded at sample ratio 0", len(others))
			}
		})
	}
}

// checkTrace checks the spans of one request's trace: one chain from the
// caller's span to stock, with the mesh's attributes on each span.
func checkTrace(t *testing.T, format string, spans []receivedSpan, callerSpan, tracestate string, products int) {
	t.Helper()
	const (
		client = tracepb.Span_SPAN_KIND_CLIENT
		server = tracepb.Span_SPAN_KIND_SERVER
	)
	id := func(sa string) string { return "spiffe://weft.local/ns/demo/sa/" + sa }
	byParent := map[string][]receivedSpan{}
	for _, s := range spans {
		p := hex.EncodeToString(s.ParentSpanId)
		byParent[p] = append(byParent[p], s)
	}
	// hop is one step down the chain: the children of parent, which must
	// be n spans of the given proxy and kind with the given attributes.
	hop := func(parent, what, service string, kind tracepb.Span_SpanKind, n int, attrs map[string]string) []receivedSpan {
		t.Helper()
		children := byParent[parent]
		if len(children) != n {
			t.Fatalf("%s: %s: %d spans with parent %s, want %d:\n%s", format, what, len(children), parent, n, describe(spans))
		}
		for _, s := range children {
			if s.service != service || s.Kind != kind {
				t.Errorf("%s: %s: span %q of %s, kind %s; want a %s span of %s", format, what, s.Name, s.service, s.Kind, kind, service)
			}
			for k, v := range attrs {
				if got := s.attr(k); got != v {
					t.Errorf("%s: %s: %s=%q, want %q", format, what, k, got, v)
				}
			}
			if s.TraceState != tracestate {
				t.Errorf("%s: %s: tracestate %q, want %q", format, what, s.TraceState, tracestate)
			}
			if s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR {
				t.Errorf("%s: %s: status %v", format, what, s.GetStatus())
			}
			if s.EndTimeUnixNano < s.StartTimeUnixNano {
				t.Errorf("%s: %s: ends before it starts", format, what)
			}
		}
		return children
	}
	// A child starts after its parent: the request reaches it later.
	after := func(child, parent receivedSpan) {
		if child.StartTimeUnixNano < parent.StartTimeUnixNano {
			t.Errorf("%s: span %q of %s starts before its parent %q of %s", format, child.Name, child.service, parent.Name, parent.service)
		}
	}
	sid := func(s receivedSpan) string { return hex.EncodeToString(s.SpanId) }

	loadgen := hop(callerSpan, "loadgen's proxy calling web", "demo/loadgen-0", client, 1, map[string]string{
		"weft.source.workload": "demo/loadgen-0", "weft.source.identity": id("loadgen"),
		"weft.destination.service": "demo/web", "weft.destination.workload": "demo/web-0", "weft.destination.identity": id("web"),
		"http.request.method": "GET", "url.path": "/api/products", "http.response.status_code": "200",
	})[0]
	webIn := hop(sid(loadgen), "web's proxy taking the request", "demo/web-0", server, 1, map[string]string{
		"weft.source.identity": id("loadgen"), "weft.destination.workload": "demo/web-0", "weft.destination.identity": id("web"),
		"url.path": "/api/products", "http.response.status_code": "200",
	})[0]
	after(webIn, loadgen)
	const catalog = "demo/catalog-v1-0" // where the route sends web's calls
	webOut := hop(sid(webIn), "web's proxy calling catalog", "demo/web-0", client, 1, map[string]string{
		"weft.source.workload": "demo/web-0", "weft.source.identity": id("web"),
		// The route's backend, as in the metrics' destination_service.
		"weft.destination.service": "demo/catalog-v1", "weft.destination.workload": catalog, "weft.destination.identity": id("catalog"),
		"weft.route": "HTTPRoute demo/catalog-traced", "url.path": "/products", "http.response.status_code": "200",
	})[0]
	after(webOut, webIn)
	catalogIn := hop(sid(webOut), "catalog's proxy taking web's call", catalog, server, 1, map[string]string{
		"weft.source.identity": id("web"), "weft.destination.workload": catalog, "weft.destination.identity": id("catalog"),
		"url.path": "/products", "http.response.status_code": "200",
	})[0]
	after(catalogIn, webOut)
	lookups := hop(sid(catalogIn), "catalog's proxy calling stock", catalog, client, products, map[string]string{
		"weft.source.workload": catalog, "weft.source.identity": id("catalog"),
		"weft.destination.service": "demo/stock", "weft.destination.workload": "demo/stock-0", "weft.destination.identity": id("stock"),
		"url.path": "/weft.demo.v1.Stock/GetStock", "rpc.grpc.status_code": "0",
	})
	for _, l := range lookups {
		after(l, catalogIn)
		stockIn := hop(sid(l), "stock's proxy taking catalog's call", "demo/stock-0", server, 1, map[string]string{
			"weft.source.identity": id("catalog"), "weft.destination.workload": "demo/stock-0", "weft.destination.identity": id("stock"),
			"url.path": "/weft.demo.v1.Stock/GetStock", "rpc.grpc.status_code": "0",
		})[0]
		after(stockIn, l)
	}
	if want := 4 + 2*products; len(spans) != want {
		t.Errorf("%s: %d spans in the trace, want %d:\n%s", format, len(spans), want, describe(spans))
	}
	if !t.Failed() {
		t.Logf("%s: %d spans, one chain: %s", format, len(spans), describe([]receivedSpan{loadgen, webIn, webOut, catalogIn, lookups[0]}))
	}
}

// describe lists spans one a line: proxy, kind, name, ids, attributes.
func describe(spans []receivedSpan) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "\n  %s %s %q span %x parent %x:", s.service, s.Kind, s.Name, s.SpanId, s.ParentSpanId)
		for _, kv := range s.Attributes {
			fmt.Fprintf(&b, " %s=%s", kv.Key, attrString(kv.GetValue()))
		}
	}
	return b.String()
}

// startTracedDemo runs `weft up --demo` with more flags, on ports of its
// own, and waits until web answers through the mesh.
func startTracedDemo(t *testing.T, flags ...string) *demoRun {
	t.Helper()
	stateDir := t.TempDir()
	portBase := freeDemoPorts(t)
	grpcPort, adminPort := freePort(t), freePort(t)
	up := start(t, "weft up --demo", "weft", append([]string{"up", "--demo", "--port-base", strconv.Itoa(portBase),
		"--state-dir", stateDir, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPort)}, flags...)...)
	t.Cleanup(func() { _ = up.stop(syscall.SIGINT, 30*time.Second) })
	d := &demoRun{
		cp:        &mesh{t: t, adminPort: adminPort},
		manifests: filepath.Join(stateDir, "manifests"),
		workloads: map[string]demoWorkload{},
		client:    &http.Client{Timeout: 10 * time.Second},
	}
	eventually(t, 60*time.Second, "weft up prints how to reach the demo", func() error {
		m := regexp.MustCompile(`curl (http://127\.0\.0\.1:\d+/\S*)`).FindStringSubmatch(up.Output())
		if m == nil {
			return fmt.Errorf("output so far:\n%s", up.Output())
		}
		d.webURL = m[1]
		return nil
	})
	if !strings.Contains(up.Output(), "tracing         OTLP/") {
		t.Errorf("weft up's summary does not say where spans go:\n%s", up.Output())
	}
	// The proxies' admin addresses, for apply to see a change in force.
	for _, row := range demoTable.FindAllStringSubmatch(up.Output(), -1) {
		d.workloads[row[1]] = demoWorkload{admin: row[4]}
	}
	if d.workloads["demo/web-0"].admin == "" {
		t.Fatalf("no row for demo/web-0 in weft up's table:\n%s", up.Output())
	}
	eventually(t, 30*time.Second, "the demo answers through the mesh", func() error {
		if a := d.webGet(t); a.code != http.StatusOK {
			return fmt.Errorf("web: %d %s %v", a.code, a.body, a.err)
		}
		return nil
	})
	return d
}

// tracedGet calls web with the given headers (name, value pairs), wants
// its products, and returns how many there were.
func (d *demoRun) tracedGet(t *testing.T, url string, header ...string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p struct {
		Products []json.RawMessage `json:"products"`
	}
	if err := json.Unmarshal(body, &p); err != nil || resp.StatusCode != http.StatusOK || len(p.Products) == 0 {
		t.Fatalf("web with %q: %s %s (%v)", header, resp.Status, body, err)
	}
	return len(p.Products)
}

func newTraceID(t *testing.T) string { return randomHex(t, 16) }
func newSpanID(t *testing.T) string  { return randomHex(t, 8) }

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// otlpReceiver is an OpenTelemetry collector's trace receiver, over gRPC
// (the TraceService) or HTTP (protobuf POSTs to /v1/traces), keeping
// every span with its resource's service.name.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []receivedSpan
	exports int
}

type receivedSpan struct {
	service string
	*tracepb.Span
}

func (s receivedSpan) attr(key string) string {
	for _, kv := range s.Attributes {
		if kv.Key == key {
			return attrString(kv.GetValue())
		}
	}
	return ""
}

func attrString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	}
	return v.String()
}

func (r *otlpReceiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.exports++
	for _, rs := range req.GetResourceSpans() {
		svc := ""
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.Key == "service.name" {
				svc = kv.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{svc, s})
			}
		}
	}
}

func (r *otlpReceiver) all() []receivedSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

func (r *otlpReceiver) exportCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.exports
}

// trace returns the spans of one trace, by its hex id, oldest first.
func (r *otlpReceiver) trace(id string) []receivedSpan {
	want, _ := hex.DecodeString(id)
	var out []receivedSpan
	for _, s := range r.all() {
		if bytes.Equal(s.TraceId, want) {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].StartTimeUnixNano < out[j].StartTimeUnixNano })
	return out
}

// Export is the OTLP/gRPC TraceService.
func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// serveGRPC serves the receiver on a real gRPC server on 127.0.0.1 and
// returns its host:port.
func (r *otlpReceiver) serveGRPC(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// serveHTTP serves the receiver's OTLP/HTTP side on 127.0.0.1 and
// returns its URL; it takes only what the specification allows a
// protobuf exporter to send.
func (r *otlpReceiver) serveHTTP(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 16<<20))
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.add(&export)
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(out)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}
