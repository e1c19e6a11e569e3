package proxy_test

import (
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
)

// twoApps is demo/api served by "bad", answering 500 at once, and "good",
// answering 200 after goodDelay, under traffic policy tp (nil: none). It
// returns a func making one request (status, X-Backend) and the hits of
// each app.
func twoApps(t *testing.T, goodDelay time.Duration, tp *model.TrafficPolicy) (func() (int, string), *atomic.Int64, *atomic.Int64) {
	t.Helper()
	var badHits, goodHits atomic.Int64
	port := model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1}
	mk := func(name string, hits *atomic.Int64, h func(w http.ResponseWriter)) *model.Endpoint {
		app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			w.Header().Set("X-Backend", name)
			h(w)
		}))
		s := newServer(t, "api-"+name, model.WorkloadPort{Name: "http", Port: app, Protocol: model.ProtocolHTTP1})
		return s.endpoint(map[uint32]uint32{80: app})
	}
	bad := mk("bad", &badHits, func(w http.ResponseWriter) { w.WriteHeader(500) })
	good := mk("good", &goodHits, func(http.ResponseWriter) { time.Sleep(goodDelay) })
	c := newClient(t, proxy.Options{}, service(port), []uint32{80}, bad, good)
	c.version++
	st := &model.ServiceState{Service: service(port), Endpoints: []*model.Endpoint{bad, good}, Traffic: tp}
	if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
		t.Fatal(err)
	}
	client := h1Client()
	return func() (int, string) {
		resp, err := client.Get("http://" + c.addr(80) + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Backend")
	}, &badHits, &goodHits
}

// A retry never goes back to an endpoint it has already tried
// (docs/traffic.md, Load balancing): with one retry and two endpoints,
// every request the bad endpoint fails is then answered by the good one.
func TestRetryNeverGoesBackToATriedEndpoint(t *testing.T) {
	get, bad, good := twoApps(t, 1500*time.Millisecond, &model.TrafficPolicy{Retry: retryPolicy(1, 1, 100)})
	failed := 0
	for range 6 {
		if code, _ := get(); code != 200 {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of 6 requests failed with one retry over two endpoints (bad hit %d times, good %d): the retry went back to the endpoint that had just failed",
			failed, bad.Load(), good.Load())
	}
}

// A failed answer counts as a slow one for the balancer, so an endpoint
// answering 500 at once gets few requests rather than most (it looks
// fastest by latency alone).
func TestEndpointAnswering5xxDrawsFewRequests(t *testing.T) {
	get, bad, good := twoApps(t, 5*time.Millisecond, nil)
	for range 200 {
		get()
	}
	if b, g := bad.Load(), good.Load(); b > (b+g)/4 {
		t.Errorf("the endpoint answering 500 at once took %d of %d requests, want few", b, b+g)
	}
}
