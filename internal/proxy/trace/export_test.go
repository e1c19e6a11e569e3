package trace

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// collector is an OTLP receiver for tests: it keeps every span with the
// service.name of its resource.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu       sync.Mutex
	spans    []gotSpan
	requests int
	headers  []string // value of the "authorization" header of each export
}

type gotSpan struct {
	service string
	*tracepb.Span
}

func (c *collector) add(req *coltracepb.ExportTraceServiceRequest, auth string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests++
	c.headers = append(c.headers, auth)
	for _, rs := range req.GetResourceSpans() {
		svc := attr(rs.GetResource().GetAttributes(), "service.name")
		for _, ss := range rs.GetScopeSpans() {
			if ss.GetScope().GetName() != ScopeName {
				panic("scope " + ss.GetScope().GetName())
			}
			for _, s := range ss.GetSpans() {
				c.spans = append(c.spans, gotSpan{svc, s})
			}
		}
	}
}

func (c *collector) all() []gotSpan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]gotSpan(nil), c.spans...)
}

// Export is the gRPC TraceService.
func (c *collector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	auth := ""
	if v := metadata.ValueFromIncomingContext(ctx, "authorization"); len(v) == 1 {
		auth = v[0]
	}
	c.add(req, auth)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// startGRPCCollector serves the OTLP trace service on 127.0.0.1.
func startGRPCCollector(t testing.TB) (string, *collector) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, c)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), c
}

// startHTTPCollector serves OTLP/HTTP protobuf on 127.0.0.1 at /v1/traces.
func startHTTPCollector(t testing.TB) (string, *collector) {
	t.Helper()
	c := &collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(r.Body)
		var req coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &req)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.add(&req, r.Header.Get("Authorization"))
		resp, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, c
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			switch v := kv.GetValue().GetValue().(type) {
			case *commonpb.AnyValue_StringValue:
				return v.StringValue
			case *commonpb.AnyValue_IntValue:
				return fmt.Sprint(v.IntValue)
			}
		}
	}
	return ""
}

// node is one workload of the simulated mesh: its app, and its proxy's
// inbound and outbound listeners, with the proxy's Tracer.
type node struct {
	name     string
	tracer   *Tracer
	inbound  *httptest.Server
	outbound *httptest.Server
	app      *httptest.Server
	seen     chan http.Header // the headers the app received
}

func spiffe(name string) string { return "spiffe://test.local/ns/default/sa/" + name }

// newNode starts a workload whose app calls next (through its own
// outbound listener) when next is not nil, forwarding the headers it
// received and nothing it computed: the app knows nothing of tracing.
// The outbound side uses Handler when viaHandler, else Transport.
func newNode(t *testing.T, name string, cfg Config, next *node, viaHandler bool, appStatus int) *node {
	t.Helper()
	cfg.ServiceName = name
	cfg.Resource = map[string]string{"weft.workload": name + "-0"}
	cfg.BatchTimeout = 20 * time.Millisecond
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, tracer: tr, seen: make(chan http.Header, 1)}
	n.app = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.seen <- r.Header.Clone()
		if next == nil {
			w.WriteHeader(appStatus)
			_, _ = io.WriteString(w, "hello from "+name)
			return
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, n.outbound.URL+"/call/"+next.name+"?secret=1", nil)
		for k, v := range r.Header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(n.app.Close)
	appURL, _ := url.Parse(n.app.URL)
	toApp := httputil.NewSingleHostReverseProxy(appURL)
	n.inbound = httptest.NewServer(tr.Handler(KindServer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		s.SetSource(Peer{Identity: r.Header.Get("X-Test-Peer-Identity")})
		s.SetDestination(Peer{Workload: name + "-0", Service: "default/" + name, Identity: spiffe(name)})
		s.SetProtocol("http1")
		s.SetPeerAddress(r.RemoteAddr)
		toApp.ServeHTTP(w, r)
	})))
	t.Cleanup(n.inbound.Close)
	if next != nil {
		nextURL, _ := url.Parse(next.inbound.URL)
		fwd := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(nextURL)
			pr.Out.Header.Set("X-Test-Peer-Identity", spiffe(name)) // what mTLS would tell the peer
		}}
		mesh := func(s *Span) {
			s.SetSource(Peer{Workload: name + "-0", Service: "default/" + name, Identity: spiffe(name)})
			s.SetDestination(Peer{Service: "default/" + next.name, Identity: spiffe(next.name)})
			s.SetRoute("HTTPRoute default/" + next.name)
			s.SetHTTPRoute("/call/")
			s.SetProtocol("http1")
		}
		var h http.Handler
		if viaHandler {
			h = tr.Handler(KindClient, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				s := FromContext(r.Context())
				mesh(s)
				s.AddRetry() // as if the first try had failed
				fwd.ServeHTTP(w, r)
			}))
		} else {
			fwd.Transport = tr.Transport(roundTripFunc(func(r *http.Request) (*http.Response, error) {
				mesh(FromContext(r.Context()))
				return http.DefaultTransport.RoundTrip(r)
			}))
			h = fwd
		}
		n.outbound = httptest.NewServer(h)
		t.Cleanup(n.outbound.Close)
	}
	t.Cleanup(func() { _ = tr.Shutdown(context.Background()) })
	return n
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// waitSpans waits until the tracer has ended n sampled spans: a handler
// ends its span just after the client has its answer.
func waitSpans(t *testing.T, tr *Tracer, n uint64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for tr.Stats().Spans < n {
		if time.Now().After(deadline) {
			t.Fatalf("tracer ended %d spans, want %d", tr.Stats().Spans, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestThreeHops sends one request through three workloads, A -> B -> C,
// each with a proxy whose inbound and outbound sides record spans, and
// checks that the collector gets five spans of one trace, each the child
// of the one before: A.in -> A.out -> B.in -> B.out -> C.in.
func TestThreeHops(t *testing.T) {
	tid, sid := mustTID(t, tid32), mustSID(t, par16)
	cases := []struct {
		name     string
		protocol Protocol
		ratio    float64
		incoming http.Header // what the client sends to A
		parent   SpanID      // A.in's parent
		traceID  TraceID     // zero: any new one
		sampled  bool
		b3       bool // B3 multi headers expected at every app
		state    string
	}{
		{name: "grpc export, new trace", protocol: ProtocolGRPC, ratio: 1, sampled: true},
		{name: "http export, new trace", protocol: ProtocolHTTP, ratio: 1, sampled: true},
		{name: "w3c joined with tracestate, parent-based despite ratio 0", protocol: ProtocolGRPC, ratio: 0,
			incoming: headers("traceparent", "00-"+tid32+"-"+par16+"-01", "tracestate", "vendor=x"), parent: sid, traceID: tid, sampled: true, state: "vendor=x"},
		{name: "b3 multi joined, kept as b3", protocol: ProtocolHTTP, ratio: 0,
			incoming: headers("X-B3-TraceId", tid32, "X-B3-SpanId", par16, "X-B3-Sampled", "1"), parent: sid, traceID: tid, sampled: true, b3: true},
		{name: "not sampled upstream: propagated, nothing recorded", protocol: ProtocolGRPC, ratio: 1,
			incoming: headers("traceparent", "00-"+tid32+"-"+par16+"-00"), traceID: tid},
		{name: "malformed headers: a new trace", protocol: ProtocolHTTP, ratio: 1,
			incoming: headers("traceparent", "00-zz-"+par16+"-01", "b3", "nonsense"), sampled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var endpoint string
			var col *collector
			if tc.protocol == ProtocolGRPC {
				endpoint, col = startGRPCCollector(t)
			} else {
				endpoint, col = startHTTPCollector(t)
			}
			cfg := Config{Endpoint: endpoint, Protocol: tc.protocol, SampleRatio: tc.ratio, Headers: map[string]string{"authorization": "Bearer t0ken"}}
			c := newNode(t, "c", cfg, nil, false, http.StatusServiceUnavailable)
			b := newNode(t, "b", cfg, c, false, 0)
			a := newNode(t, "a", cfg, b, true, 0)

			req, _ := http.NewRequest(http.MethodGet, a.inbound.URL+"/start?token=secret", nil)
			for k, v := range tc.incoming {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable || string(body) != "hello from c" {
				t.Fatalf("answer %s %q", resp.Status, body)
			}
			seen := map[string]http.Header{"a": <-a.seen, "b": <-b.seen, "c": <-c.seen}

			want := uint64(0)
			if tc.sampled {
				want = 2
			}
			waitSpans(t, a.tracer, want)
			waitSpans(t, b.tracer, want)
			waitSpans(t, c.tracer, want/2)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, n := range []*node{a, b, c} {
				if err := n.tracer.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				if st := n.tracer.Stats(); st.Exported != st.Spans || st.Dropped+st.Failed != 0 {
					t.Errorf("%s: %+v", n.name, st)
				}
			}

			// Every app saw a context; each hop's is the span of the
			// inbound side of its own proxy.
			ctxs := map[string]SpanContext{}
			for name, h := range seen {
				sc := Extract(h)
				if !sc.IsValid() || sc.IsSampled() != tc.sampled {
					t.Fatalf("app %s got %v", name, h)
				}
				if tc.b3 != (sc.Formats&FormatB3Multi != 0) || sc.Formats&FormatW3C == 0 {
					t.Errorf("app %s got formats %b: %v", name, sc.Formats, h)
				}
				if sc.TraceState != tc.state {
					t.Errorf("app %s got tracestate %q, want %q", name, sc.TraceState, tc.state)
				}
				ctxs[name] = sc
			}
			if ctxs["a"].TraceID != ctxs["b"].TraceID || ctxs["b"].TraceID != ctxs["c"].TraceID {
				t.Errorf("apps saw several traces: %v", ctxs)
			}
			if tc.traceID.IsValid() && ctxs["a"].TraceID != tc.traceID {
				t.Errorf("trace %s, want the incoming %s", ctxs["a"].TraceID, tc.traceID)
			}

			spans := col.all()
			if !tc.sampled {
				if len(spans) != 0 {
					t.Fatalf("%d spans exported for a trace not sampled", len(spans))
				}
				return
			}
			if len(spans) != 5 {
				t.Fatalf("%d spans, want 5", len(spans))
			}
			byName := map[string]gotSpan{}
			for _, s := range spans {
				key := s.service + "." + map[tracepb.Span_SpanKind]string{tracepb.Span_SPAN_KIND_SERVER: "in", tracepb.Span_SPAN_KIND_CLIENT: "out"}[s.Kind]
				byName[key] = s
			}
			chain := []string{"a.in", "a.out", "b.in", "b.out", "c.in"}
			trace := byName["a.in"].TraceId
			appTrace := ctxs["a"].TraceID
			for i, key := range chain {
				s, ok := byName[key]
				if !ok {
					t.Fatalf("no span %s among %v", key, spans)
				}
				if !bytes.Equal(s.TraceId, trace) || !bytes.Equal(s.TraceId, appTrace[:]) {
					t.Errorf("%s in trace %x, want %x", key, s.TraceId, trace)
				}
				wantParent := tc.parent[:]
				if i > 0 {
					wantParent = byName[chain[i-1]].SpanId
				}
				if !tc.parent.IsValid() && i == 0 {
					wantParent = nil
				}
				if !bytes.Equal(s.ParentSpanId, wantParent) {
					t.Errorf("%s: parent %x, want %x", key, s.ParentSpanId, wantParent)
				}
				if s.TraceState != tc.state {
					t.Errorf("%s: tracestate %q, want %q", key, s.TraceState, tc.state)
				}
				if s.StartTimeUnixNano == 0 || s.EndTimeUnixNano < s.StartTimeUnixNano {
					t.Errorf("%s: times %d..%d", key, s.StartTimeUnixNano, s.EndTimeUnixNano)
				}
			}
			// Each app saw its own proxy's inbound span as parent.
			for _, name := range []string{"a", "b", "c"} {
				if got := ctxs[name].SpanID; !bytes.Equal(got[:], byName[name+".in"].SpanId) {
					t.Errorf("app %s saw span %s, not its inbound span %x", name, got, byName[name+".in"].SpanId)
				}
			}

			// Attributes: mesh identities, route, retries, bounded HTTP.
			checks := []struct{ span, key, want string }{
				{"a.in", AttrURLPath, "/start"},
				{"a.in", AttrHTTPMethod, "GET"},
				{"a.in", AttrHTTPStatus, "503"},
				{"a.in", AttrDstIdentity, spiffe("a")},
				{"a.out", AttrSrcIdentity, spiffe("a")},
				{"a.out", AttrDstIdentity, spiffe("b")},
				{"a.out", AttrDstService, "default/b"},
				{"a.out", AttrRoute, "HTTPRoute default/b"},
				{"a.out", AttrHTTPRoute, "/call/"},
				{"a.out", AttrRetries, "1"},
				{"a.out", AttrProtocol, "http1"},
				{"b.in", AttrSrcIdentity, spiffe("a")},
				{"b.in", AttrDstWorkload, "b-0"},
				{"b.out", AttrRetries, "0"},
				{"b.out", AttrURLPath, "/call/c"},
				{"b.out", AttrHTTPStatus, "503"},
				{"c.in", AttrSrcIdentity, spiffe("b")},
				{"c.in", AttrProtocolVersion, "1.1"},
			}
			for _, c := range checks {
				if got := attr(byName[c.span].Attributes, c.key); got != c.want {
					t.Errorf("%s %s = %q, want %q", c.span, c.key, got, c.want)
				}
			}
			for _, s := range spans {
				for _, kv := range s.Attributes {
					if v := kv.GetValue().GetStringValue(); bytes.Contains([]byte(v), []byte("secret")) {
						t.Errorf("%s: %s carries the query string: %q", s.Name, kv.Key, v)
					}
				}
				if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR {
					t.Errorf("%s.%s: status %v, want an error for a 503", s.service, s.Name, s.Status)
				}
			}
			if got := byName["a.out"].Name; got != "GET /call/" {
				t.Errorf("a.out named %q", got)
			}
			if got := byName["a.in"].Name; got != "GET" {
				t.Errorf("a.in named %q", got)
			}
			col.mu.Lock()
			defer col.mu.Unlock()
			for _, h := range col.headers {
				if h != "Bearer t0ken" {
					t.Errorf("export carried authorization %q", h)
				}
			}
		})
	}
}
