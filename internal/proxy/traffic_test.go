package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/testutil/dialcount"
)

// policyMesh is a client calling demo/api, served by one workload whose
// app answers with fail(n) for its n-th request, under traffic policy tp.
func policyMesh(t *testing.T, tp *model.TrafficPolicy, fail func(n int64, r *http.Request) int) (*clientSide, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.WriteHeader(fail(n, r))
		w.Write(body)
	}))
	s := newServer(t, "api-0", model.WorkloadPort{Port: app, Protocol: model.ProtocolHTTP1})
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	c := newClient(t, proxy.Options{}, service(port), []uint32{80}, s.endpoint(map[uint32]uint32{80: app}))
	c.version++
	st := &model.ServiceState{Service: service(port), Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: app})}, Traffic: tp}
	if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
		t.Fatal(err)
	}
	return c, &hits
}

func retryPolicy(attempts uint32, ratio float64, minPerSecond uint32) *model.RetryPolicy {
	return &model.RetryPolicy{Ref: model.Ref{Namespace: "demo", Name: "retries"}, Service: "api", RetryOn: []string{model.RetryOn5xx},
		Attempts: attempts, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond,
		Budget: model.RetryBudget{Ratio: ratio, MinPerSecond: minPerSecond, Window: 10 * time.Second}}
}

func send(t *testing.T, c *clientSide, method, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+c.addr(80)+"/", strings.NewReader(body))
	resp, err := h1Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(got)
}

func TestRetriesHideFailures(t *testing.T) {
	// Every other request fails: one retry hides it, body and all.
	c, hits := policyMesh(t, &model.TrafficPolicy{Retry: retryPolicy(2, 0.5, 10)}, func(n int64, _ *http.Request) int {
		if n%2 == 1 {
			return 503
		}
		return 200
	})
	for i := range 50 {
		if code, body := send(t, c, "POST", "payload"); code != 200 || body != "payload" {
			t.Fatalf("request %d: %d %q, want 200 with the body replayed", i, code, body)
		}
	}
	if n := hits.Load(); n != 100 {
		t.Errorf("the app saw %d requests for 50, want 100 (one retry each)", n)
	}
}

func TestRetryBudgetStopsARetryStorm(t *testing.T) {
	// Everything fails: the budget (10% of requests, 1/s over 10s) keeps
	// retries far below attempts x requests.
	c, hits := policyMesh(t, &model.TrafficPolicy{Retry: retryPolicy(3, 0.1, 1)}, func(int64, *http.Request) int { return 500 })
	const requests = 200
	for range requests {
		if code, _ := send(t, c, "GET", ""); code != 500 {
			t.Fatalf("got %d, want the app's 500 once retries are spent", code)
		}
	}
	retries := hits.Load() - requests
	if retries > requests/10+10+1 {
		t.Errorf("%d retries for %d failing requests, want at most %d (the budget)", retries, requests, requests/10+10)
	}
	if retries < 10 {
		t.Errorf("%d retries: the budget's floor allows 10", retries)
	}
}

func TestFaultInjection(t *testing.T) {
	fault := &model.FaultPolicy{Ref: model.Ref{Namespace: "demo", Name: "chaos"}, Service: "api",
		Headers: []model.ValueMatch{{Name: "x-chaos", Value: "on"}},
		Delay:   20 * time.Millisecond, DelayPercent: 100, AbortPercent: 50, AbortHTTPStatus: 418}
	c, hits := policyMesh(t, &model.TrafficPolicy{Fault: fault}, func(int64, *http.Request) int { return 200 })
	get := func(chaos bool) (int, time.Duration) {
		req, _ := http.NewRequest("GET", "http://"+c.addr(80)+"/", nil)
		if chaos {
			req.Header.Set("X-Chaos", "on")
		}
		start := time.Now()
		resp, err := h1Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode, time.Since(start)
	}
	if code, _ := get(false); code != 200 || hits.Load() != 1 {
		t.Fatalf("without the header: %d, the app saw %d requests; want 200 and 1", code, hits.Load())
	}
	aborted := 0
	const n = 100
	for range n {
		code, took := get(true)
		if took < 20*time.Millisecond {
			t.Fatalf("a matching request took %s, want the 20ms delay", took)
		}
		if code == 418 {
			aborted++
		}
	}
	if aborted < n*30/100 || aborted > n*70/100 {
		t.Errorf("%d of %d aborted, want about half", aborted, n)
	}
	if got := hits.Load(); got != int64(1+n-aborted) {
		t.Errorf("the app saw %d requests, want %d (aborted ones never leave the proxy)", got, 1+n-aborted)
	}
}

func TestOutlierDetectionEjectsAFailingEndpoint(t *testing.T) {
	good := serveHTTP(t, echoApp("good"))
	bad := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(500) }))
	sg := newServer(t, "api-0", model.WorkloadPort{Port: good, Protocol: model.ProtocolHTTP1})
	sb := newServer(t, "api-1", model.WorkloadPort{Port: bad, Protocol: model.ProtocolHTTP1})
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	eps := []*model.Endpoint{sg.endpoint(map[uint32]uint32{80: good}), sb.endpoint(map[uint32]uint32{80: bad})}
	c := newClient(t, proxy.Options{}, service(port), []uint32{80}, eps...)
	c.version++
	tp := &model.TrafficPolicy{Breaker: &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "api",
		Outlier: &model.OutlierDetection{Consecutive5xx: 2, BaseEjection: time.Minute, MaxEjectionPercent: 50}}}
	st := &model.ServiceState{Service: service(port), Endpoints: eps, Traffic: tp}
	if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
		t.Fatal(err)
	}
	failures := 0
	for range 100 {
		if code, _ := send(t, c, "GET", ""); code != 200 {
			failures++
		}
	}
	// Two failures in a row eject the bad one; a P2C pick can meet it at
	// most a few times before that.
	if failures > 4 {
		t.Fatalf("%d of 100 requests failed: the failing endpoint was not ejected", failures)
	}
}

func TestCircuitBreakerBoundsRequestsInFlight(t *testing.T) {
	release := make(chan struct{})
	tp := &model.TrafficPolicy{Breaker: &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "api", MaxRequests: 2}}
	c, _ := policyMesh(t, tp, func(int64, *http.Request) int { <-release; return 200 })
	codes := make(chan int, 5)
	for range 5 {
		go func() {
			resp, err := h1Client().Get("http://" + c.addr(80) + "/")
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	open := 0
	for range 3 {
		if code := <-codes; code == 503 {
			open++
		}
	}
	close(release)
	for range 2 {
		if code := <-codes; code != 200 {
			t.Errorf("an admitted request got %d", code)
		}
	}
	if open != 3 {
		t.Fatalf("%d requests refused with 2 in flight and 5 sent, want 3", open)
	}
}

// breakerMesh is a client calling demo/api port 80 (protocol proto), one
// workload serving it on each of apps, under traffic policy tp; d dials
// the client's connections to their proxies.
func breakerMesh(t *testing.T, d *dialcount.Dialer, proto model.Protocol, tp *model.TrafficPolicy, apps ...uint32) *clientSide {
	t.Helper()
	return breakerMeshOf(t, d, service(model.ServicePort{Port: 80, Protocol: proto}), tp, apps...)
}

// breakerMeshOf is breakerMesh for a service of one port, 80, the caller
// made.
func breakerMeshOf(t *testing.T, d *dialcount.Dialer, svc *model.Service, tp *model.TrafficPolicy, apps ...uint32) *clientSide {
	t.Helper()
	port := svc.Ports[0]
	proto := port.Protocol
	var eps []*model.Endpoint
	for i, app := range apps {
		s := newServer(t, "api-"+strconv.Itoa(i), model.WorkloadPort{Port: app, Protocol: proto})
		eps = append(eps, s.endpoint(map[uint32]uint32{80: app}))
	}
	c := newClient(t, proxy.Options{Dialer: d}, svc, []uint32{80}, eps...)
	c.version++
	st := &model.ServiceState{Service: svc, Endpoints: eps, Traffic: tp}
	if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
		t.Fatal(err)
	}
	return c
}

func breakerPolicy(set func(*model.CircuitBreakerPolicy)) *model.TrafficPolicy {
	b := &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "api"}
	set(b)
	return &model.TrafficPolicy{Breaker: b}
}

// clientMetric is the value of the client proxy's metric line that starts
// with series (name and labels as Prometheus writes them), 0 when absent.
func clientMetric(t *testing.T, c *clientSide, series string) float64 {
	t.Helper()
	rec := httptest.NewRecorder()
	c.proxy.Metrics().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for line := range strings.Lines(rec.Body.String()) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// getAll sends n GETs at once and returns their statuses as they come.
func getAll(c *clientSide, n int) chan int {
	codes := make(chan int, n)
	for range n {
		go func() {
			resp, err := h1Client().Get("http://" + c.addr(80) + "/")
			if err != nil {
				codes <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	return codes
}

// With one connection allowed and two requests per connection, the
// third request waits for the first connection to finish and close: the
// second connection is not opened while it is open, and no request fails.
func TestCircuitBreakerMaxConnectionsHTTP(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
		io.WriteString(w, "ok")
	}))
	d := &dialcount.Dialer{}
	c := breakerMesh(t, d, model.ProtocolHTTP1, breakerPolicy(func(b *model.CircuitBreakerPolicy) {
		b.MaxConnections, b.MaxRequestsPerConnection, b.MaxPendingRequests = 1, 2, 10
	}), app)
	codes := getAll(c, 5)
	waitFor(t, "two requests at the app", func() bool { return arrived.Load() == 2 })
	time.Sleep(100 * time.Millisecond) // a second connection has every chance to open
	if dials, _, _ := d.Counts(); dials != 1 || arrived.Load() != 2 {
		t.Fatalf("the connection took its 2 requests: %d connections dialed and %d requests at the app, want 1 and 2", dials, arrived.Load())
	}
	close(release)
	for range 5 {
		if code := <-codes; code != 200 {
			t.Errorf("a request got %d; waiting for a connection must not fail it", code)
		}
	}
	dials, _, peak := d.Counts()
	if peak != 1 {
		t.Errorf("%d connections open at once, want 1", peak)
	}
	if dials != 3 {
		t.Errorf("5 requests, 2 per connection: %d connections dialed, want 3", dials)
	}
	for _, reason := range []string{"requests", "connections", "pending"} {
		if n := clientMetric(t, c, `weft_outbound_circuit_open_total{reason="`+reason+`",service="demo/api"}`); n != 0 {
			t.Errorf("%v requests refused for %s, want none", n, reason)
		}
	}
}

// Over maxRequests in flight, one request waits (maxPendingRequests 1)
// and the next is refused at once with 503, counted as pending.
func TestCircuitBreakerPendingQueueOverflow(t *testing.T) {
	release := make(chan struct{})
	var arrived atomic.Int32
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Add(1)
		<-release
	}))
	c := breakerMesh(t, &dialcount.Dialer{}, model.ProtocolHTTP1, breakerPolicy(func(b *model.CircuitBreakerPolicy) {
		b.MaxRequests, b.MaxPendingRequests = 1, 1
	}), app)
	first := getAll(c, 1)
	waitFor(t, "the first request at the app", func() bool { return arrived.Load() == 1 })
	// Of the next two, one waits and one finds the queue full.
	more := getAll(c, 2)
	select {
	case code := <-more:
		if code != 503 {
			t.Fatalf("a request over the queue got %d, want 503", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no request was refused with 1 in flight, 1 waiting")
	}
	if n := clientMetric(t, c, `weft_outbound_circuit_open_total{reason="pending",service="demo/api"}`); n != 1 {
		t.Errorf("weft_outbound_circuit_open_total{reason=pending} = %v, want 1", n)
	}
	if arrived.Load() != 1 {
		t.Fatalf("%d requests at the app with maxRequests 1", arrived.Load())
	}
	close(release)
	if code := <-first; code != 200 {
		t.Errorf("the request in flight got %d", code)
	}
	if code := <-more; code != 200 {
		t.Errorf("the request that waited got %d, want 200", code)
	}
}

// The same for gRPC: the refusal is UNAVAILABLE, and a call waits in the
// queue for the one in flight.
func TestCircuitBreakerPendingQueueGRPC(t *testing.T) {
	app, port := serveGRPC(t)
	c := breakerMesh(t, &dialcount.Dialer{}, model.ProtocolGRPC, breakerPolicy(func(b *model.CircuitBreakerPolicy) {
		b.MaxRequests, b.MaxPendingRequests = 1, 1
	}), port)
	conn, err := grpc.NewClient("passthrough:///"+c.addr(80), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hang, stop := context.WithCancel(metadata.AppendToOutgoingContext(ctx, "x-hang", "1"))
	go client.UnaryCall(hang, &testpb.SimpleRequest{})
	select {
	case <-app.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the first call never reached the app")
	}
	// Of the next two, one waits and one finds the queue full.
	results := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			results <- err
		}()
	}
	select {
	case err := <-results:
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "1 requests waiting already") {
			t.Fatalf("a call over the queue = %v, want UNAVAILABLE saying the queue is full", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no call was refused with 1 in flight, 1 waiting")
	}
	stop() // the call in flight ends: the queued one goes
	waitHangEnd(t, app)
	if err := <-results; err != nil {
		t.Fatalf("the queued call: %v", err)
	}
}

// Each opaque TCP connection is a connection through the mesh: with two
// allowed and no queue, the third is closed at once, and once one ends
// another gets through.
func TestCircuitBreakerMaxConnectionsTCP(t *testing.T) {
	app := serveTCP(t, func(c net.Conn) { io.Copy(c, c) })
	d := &dialcount.Dialer{}
	c := breakerMesh(t, d, model.ProtocolTCP, breakerPolicy(func(b *model.CircuitBreakerPolicy) { b.MaxConnections = 2 }), app)
	open := func() (net.Conn, error) {
		conn, err := net.Dial("tcp", c.addr(80))
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, "ping\n"); err != nil {
			return conn, err
		}
		buf := make([]byte, 5)
		_, err = io.ReadFull(conn, buf)
		return conn, err
	}
	c1, err := open()
	if err != nil {
		t.Fatalf("first connection: %v", err)
	}
	c2, err := open()
	if err != nil {
		t.Fatalf("second connection: %v", err)
	}
	defer c2.Close()
	c3, err := open()
	if err == nil {
		t.Fatal("a third connection was carried with maxConnections 2")
	}
	c3.Close()
	if n := clientMetric(t, c, `weft_outbound_circuit_open_total{reason="connections",service="demo/api"}`); n != 1 {
		t.Errorf("weft_outbound_circuit_open_total{reason=connections} = %v, want 1", n)
	}
	if dials, _, peak := d.Counts(); dials != 2 || peak != 2 {
		t.Errorf("%d connections dialed, %d at once; want 2 and 2", dials, peak)
	}
	c1.Close()
	waitFor(t, "the first tunnel's connection closed", func() bool { _, live, _ := d.Counts(); return live == 1 })
	c4, err := open()
	if err != nil {
		t.Fatalf("a connection after one ended: %v", err)
	}
	c4.Close()
}

// A connection retires after maxRequestsPerConnection requests and the
// next opens a new one; no request fails, one after another or at once,
// bodies and all.
func TestCircuitBreakerMaxRequestsPerConnection(t *testing.T) {
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body) // an HTTP/1 server cannot echo as it reads
		w.Write(body)
	}))
	d := &dialcount.Dialer{}
	c := breakerMesh(t, d, model.ProtocolHTTP1, breakerPolicy(func(b *model.CircuitBreakerPolicy) { b.MaxRequestsPerConnection = 3 }), app)
	for i := range 10 {
		body := "request " + strconv.Itoa(i)
		if code, got := send(t, c, "POST", body); code != 200 || got != body {
			t.Fatalf("request %d: %d %q", i, code, got)
		}
	}
	if dials, _, _ := d.Counts(); dials != 4 {
		t.Errorf("10 requests, 3 per connection: %d connections dialed, want 4", dials)
	}
	var wg sync.WaitGroup
	var failed atomic.Int32
	for i := range 30 {
		wg.Go(func() {
			body := strings.Repeat("x", i*1000)
			req, _ := http.NewRequest("POST", "http://"+c.addr(80)+"/", strings.NewReader(body))
			resp, err := h1Client().Do(req)
			if err != nil {
				t.Logf("request %d: %v", i, err)
				failed.Add(1)
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != body {
				t.Logf("request %d: %d, %d bytes back of %d", i, resp.StatusCode, len(got), len(body))
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 30 requests failed while connections retired", n)
	}
	if dials, _, _ := d.Counts(); dials < 4+10 {
		t.Errorf("40 requests, 3 per connection: only %d connections dialed", dials)
	}
}

// failingGRPC answers every call UNAVAILABLE: with the status alone in
// the answer's headers (trailers-only), or after headers, in trailers.
type failingGRPC struct {
	testpb.UnimplementedTestServiceServer
	headersFirst bool
}

func (f failingGRPC) UnaryCall(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if f.headersFirst {
		grpc.SendHeader(ctx, metadata.Pairs("x-endpoint", "failing"))
	}
	return nil, status.Error(codes.Unavailable, "failing endpoint")
}

// A gRPC call that ends UNAVAILABLE is a gateway error to outlier
// detection, whether the app answers trailers-only or after headers (the
// status then reaches the calling proxy in trailers, after the body): the
// failing endpoint is ejected after two in a row.
func TestOutlierDetectionEjectsOnGRPCUnavailable(t *testing.T) {
	for _, headersFirst := range []bool{false, true} {
		name := "trailers-only"
		if headersFirst {
			name = "in trailers"
		}
		t.Run(name, func(t *testing.T) {
			_, good := serveGRPC(t)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			srv := grpc.NewServer()
			testpb.RegisterTestServiceServer(srv, failingGRPC{headersFirst: headersFirst})
			go srv.Serve(ln)
			t.Cleanup(srv.Stop)
			bad := uint32(ln.Addr().(*net.TCPAddr).Port)
			// Round-robin keeps sending calls to the failing endpoint, which
			// the latency balancer would shun after its first failure: only
			// outlier detection stops it.
			svc := service(model.ServicePort{Port: 80, Protocol: model.ProtocolGRPC})
			svc.LoadBalancer = "round-robin"
			c := breakerMeshOf(t, &dialcount.Dialer{}, svc, breakerPolicy(func(b *model.CircuitBreakerPolicy) {
				b.Outlier = &model.OutlierDetection{ConsecutiveGatewayErrors: 2, BaseEjection: time.Minute, MaxEjectionPercent: 50}
			}), good, bad)
			conn, err := grpc.NewClient("passthrough:///"+c.addr(80), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			client := testpb.NewTestServiceClient(conn)
			failures := 0
			for range 100 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
				cancel()
				if err != nil {
					if status.Code(err) != codes.Unavailable {
						t.Fatalf("UnaryCall = %v", err)
					}
					failures++
				}
			}
			// Two in a row eject it; the balancer meets it a few times
			// before that.
			if failures > 4 {
				t.Fatalf("%d of 100 calls failed: the endpoint answering UNAVAILABLE was not ejected", failures)
			}
			if n := clientMetric(t, c, `weft_outbound_ejections_total{service="demo/api"}`); n != 1 {
				t.Errorf("weft_outbound_ejections_total = %v, want 1", n)
			}
		})
	}
}

// The calling proxy passes on what is left of a gRPC call's grpc-timeout:
// less the time the call spent in the proxy (a FaultPolicy's 300ms delay
// here), and no more than the route's timeout leaves.
func TestGRPCTimeoutPropagation(t *testing.T) {
	seen := make(chan string, 1)
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Grpc-Timeout")
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "0")
	}))
	s := newServer(t, "api-0", model.WorkloadPort{Port: app, Protocol: model.ProtocolGRPC})
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolGRPC}
	eps := []*model.Endpoint{s.endpoint(map[uint32]uint32{80: app})}
	c := newClient(t, proxy.Options{}, service(port), []uint32{80}, eps...)
	delay := &model.FaultPolicy{Ref: model.Ref{Namespace: "demo", Name: "slow"}, Service: "api", Delay: 300 * time.Millisecond, DelayPercent: 100}
	apply := func(routeTimeout time.Duration) {
		t.Helper()
		st := &model.ServiceState{Service: service(port), Endpoints: eps, Traffic: &model.TrafficPolicy{Fault: delay}}
		if routeTimeout > 0 {
			st.Routes = &model.RouteTable{Rules: []model.TableRule{{Route: "HTTPRoute demo/api",
				Rule: model.RouteRule{Backends: []model.RouteBackend{{Service: "api", Weight: 1}}, Timeout: routeTimeout}}}}
		}
		c.version++
		if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
			t.Fatal(err)
		}
	}
	// call makes a call with grpc-timeout timeout and returns the
	// grpc-timeout the app saw ("" when the call never reached it) and the
	// call's grpc-status.
	call := func(timeout string) (string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+c.addr(80)+"/grpc.testing.TestService/UnaryCall", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/grpc")
		req.Header.Set("Grpc-Timeout", timeout)
		resp, err := h2cClient().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		code := resp.Header.Get("Grpc-Status") + resp.Trailer.Get("Grpc-Status")
		select {
		case got := <-seen:
			return got, code
		default:
			return "", code
		}
	}
	apply(0)
	if got, code := call("2S"); code != "0" || !within(grpcTimeout(t, got), 1400*time.Millisecond, 1700*time.Millisecond) {
		t.Errorf("2S after 300ms in the proxy reached the app as %q (grpc-status %s), want about 1.7s", got, code)
	}
	apply(500 * time.Millisecond)
	if got, code := call("2S"); code != "0" || !within(grpcTimeout(t, got), 50*time.Millisecond, 200*time.Millisecond) {
		t.Errorf("2S under a 500ms route timeout, after 300ms in the proxy, reached the app as %q (grpc-status %s), want about 200ms", got, code)
	}
	if got, code := call("100m"); got != "" || code != "4" {
		t.Errorf("a call whose 100ms passed in the proxy: the app saw grpc-timeout %q, grpc-status %q; want it never sent, DEADLINE_EXCEEDED (4)", got, code)
	}
}

func within(d, lo, hi time.Duration) bool { return d >= lo && d <= hi }

// grpcTimeout reads a grpc-timeout header: digits, then a unit.
func grpcTimeout(t *testing.T, s string) time.Duration {
	t.Helper()
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	if len(s) < 2 || len(s) > 9 || units[s[len(s)-1]] == 0 {
		t.Fatalf("grpc-timeout %q", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil {
		t.Fatalf("grpc-timeout %q: %v", s, err)
	}
	return time.Duration(n) * units[s[len(s)-1]]
}
