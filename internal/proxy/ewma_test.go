package proxy_test

import (
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
)

// twoEndpoints makes service demo/api with two endpoints named a and b,
// whose apps answer after the given delays, and a client proxy with the
// default balancer. It returns a func that makes one request and returns
// the name of the endpoint that answered.
func twoEndpoints(t *testing.T, a string, aDelay time.Duration, b string, bDelay time.Duration) func() string {
	t.Helper()
	backend := func(name string, delay time.Duration) *model.Endpoint {
		app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			w.Header().Set("X-Backend", name)
		}))
		s := newServer(t, "api-"+name, model.WorkloadPort{Port: app, Protocol: model.ProtocolHTTP1})
		return s.endpoint(map[uint32]uint32{80: app})
	}
	svc := service(model.ServicePort{Name: "http", Port: 80, Protocol: model.ProtocolHTTP1})
	c := newClient(t, proxy.Options{}, svc, []uint32{80}, backend(a, aDelay), backend(b, bDelay))
	client := h1Client()
	return func() string {
		t.Helper()
		resp, err := client.Get("http://" + c.addr(80) + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d from %q", resp.StatusCode, resp.Header.Get("X-Backend"))
		}
		return resp.Header.Get("X-Backend")
	}
}

// countSequential makes n requests one after the other and counts them
// by endpoint.
func countSequential(t *testing.T, get func() string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	start := time.Now()
	for range n {
		counts[get()]++
	}
	t.Logf("%d requests in %v: %v", n, time.Since(start).Round(time.Millisecond), counts)
	return counts
}

// The default balancer follows latency: of two endpoints of a service,
// one answering after 50ms and one at once, the fast one takes most of
// the requests. Round-robin or fewest-in-flight would split sequential
// requests evenly.
func TestDefaultBalancerPrefersFastEndpoint(t *testing.T) {
	get := twoEndpoints(t, "fast", 0, "slow", 50*time.Millisecond)
	// Warm up: connections get made, and each endpoint answers twice (the
	// first answer is not counted).
	countSequential(t, get, 10)
	const n = 200
	counts := countSequential(t, get, n)
	// The slow one gets a request only against long odds, or when a stall
	// on this machine makes the fast one look slower than 50ms.
	if counts["fast"] < n*3/4 {
		t.Fatalf("fast endpoint got %d of %d requests, want at least 75%% (%v)", counts["fast"], n, counts)
	}
}

// Latency-aware balancing still spreads sequential requests over equal
// endpoints: one slower answer must not shut an endpoint out until its
// estimate fades, nor must an endpoint that did not answer first be kept
// out by a default latency far above the real ones.
func TestDefaultBalancerSpreadsOverEqualEndpoints(t *testing.T) {
	get := twoEndpoints(t, "a", 0, "b", 0)
	const n = 200
	counts := countSequential(t, get, n)
	// Typically 30% or more each.
	for _, name := range []string{"a", "b"} {
		if counts[name] < n/20 {
			t.Fatalf("%s got %d of %d requests, want at least 5%% (%v)", name, counts[name], n, counts)
		}
	}
}
