package proxy_test

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
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
