package stats

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// serveProxy serves a fake proxy's registry at /metrics over real HTTP,
// through promhttp as the proxy's admin listener does.
func serveProxy(t *testing.T, p *fakeProxy) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(p.reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestScrapeOverHTTP scrapes real HTTP servers serving a proxy's
// exposition, and others that fail in the ways proxies do.
func TestScrapeOverHTTP(t *testing.T) {
	web, v1 := newFakeProxy("demo/web-0", 100), newFakeProxy("demo/catalog-v1-0", 200)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(broken.Close)
	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("weft_requests_total{ 1\n"))
	}))
	t.Cleanup(garbage.Close)
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); slow.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()

	var mu sync.Mutex
	targets := []Target{
		{Workload: "demo/web-0", Addr: serveProxy(t, web)},
		{Workload: "demo/catalog-v1-0", Addr: serveProxy(t, v1)},
		{Workload: "demo/broken-0", Addr: strings.TrimPrefix(broken.URL, "http://")},
		{Workload: "demo/garbage-0", Addr: strings.TrimPrefix(garbage.URL, "http://")},
		{Workload: "demo/slow-0", Addr: strings.TrimPrefix(slow.URL, "http://")},
		{Workload: "demo/closed-0", Addr: closed},
		{Workload: "demo/web-0", Addr: "127.0.0.1:1"}, // listed twice: the first counts
	}
	s := New(Options{
		Targets:     func() []Target { mu.Lock(); defer mu.Unlock(); return targets },
		Timeout:     300 * time.Millisecond,
		Concurrency: 2,
		Logger:      quiet,
	})
	ctx := t.Context()

	web.carry(call{service: "demo/catalog", status: 200, latency: 0.004, n: 3})
	s.Scrape(ctx)
	web.carry(call{service: "demo/catalog", status: 200, latency: 0.004, n: 40})
	web.carry(call{service: "demo/catalog", status: 502, latency: 0.004, n: 10})
	web.conns(outbound, "demo/catalog", 2, 0, 500, 5000)
	v1.carry(call{direction: inbound, status: 200, latency: 0.002, n: 50})
	time.Sleep(50 * time.Millisecond)
	s.Scrape(ctx)

	sum := s.Summary(time.Minute)
	c := service(sum, "demo/catalog")
	if c == nil || c.Requests != 50 || c.Successes != 40 || c.TCP == nil || c.TCP.Open != 2 {
		t.Fatalf("catalog: %+v", c)
	}
	if want := 50 / sum.Seconds; !near(c.RPS, want) || sum.Seconds < 0.05 || sum.Seconds > 2 {
		t.Errorf("rps %v over %vs, want %v", c.RPS, sum.Seconds, want)
	}
	if len(sum.Workloads) != 2 || sum.Workloads[0].Name != "demo/catalog-v1-0" || sum.Workloads[0].Requests != 50 {
		t.Errorf("workloads: %+v", sum.Workloads)
	}
	if sum.Proxies.Targets != 6 || sum.Proxies.Scraped != 2 || len(sum.Proxies.Failed) != 4 {
		t.Fatalf("proxies: %+v", sum.Proxies)
	}
	why := map[string]string{}
	for _, f := range sum.Proxies.Failed {
		why[f.Workload] = f.Error
	}
	for w, want := range map[string]string{
		"demo/broken-0":  "500 Internal Server Error",
		"demo/garbage-0": "parsing metrics",
		"demo/slow-0":    "deadline exceeded",
		"demo/closed-0":  "connection refused",
	} {
		if !strings.Contains(why[w], want) || !strings.Contains(why[w], w) {
			t.Errorf("%s failed with %q, want it to say %q", w, why[w], want)
		}
	}

	// A workload leaving the model is no longer scraped.
	mu.Lock()
	targets = targets[:1]
	mu.Unlock()
	s.Scrape(ctx)
	if sum := s.Summary(time.Nanosecond); sum.Proxies.Targets != 1 || sum.Proxies.Scraped != 1 || len(sum.Workloads) != 1 {
		t.Errorf("after the others left: %+v", sum)
	}
}

// TestRun scrapes every interval until its context ends.
func TestRun(t *testing.T) {
	web := newFakeProxy("demo/web-0", 100)
	addr := serveProxy(t, web)
	s := New(Options{Targets: func() []Target { return []Target{{Workload: "demo/web-0", Addr: addr}} }, Interval: 20 * time.Millisecond, Logger: quiet})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	historyTotal := func() (n int64) {
		for _, p := range s.History("demo/catalog").Points {
			n += p.Requests
		}
		return n
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && (len(s.History("demo/catalog").Points) < 3 || historyTotal() < 3) {
		web.carry(call{service: "demo/catalog", status: 200, n: 1})
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	h := s.History("demo/catalog")
	total := historyTotal()
	if len(h.Points) < 3 || total < 3 {
		t.Fatalf("history after Run: %+v", h)
	}
	// The summary of all that is kept counts what the points do: every
	// call read after the first scrape, whose reading is the baseline.
	if c := service(s.Summary(time.Hour), "demo/catalog"); c == nil || c.Requests != total {
		t.Errorf("summary %+v, history total %d", c, total)
	}
}
