package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/stats"
)

func f(v float64) *float64 { return &v }
func b(v bool) *bool       { return &v }

// statSummary is what the fake admin API answers.
var statSummary = stats.Summary{
	Window: "30s", Interval: "5s", Seconds: 30,
	From:       time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC),
	To:         time.Date(2030, 1, 1, 12, 0, 30, 0, time.UTC),
	LastScrape: time.Date(2030, 1, 1, 12, 0, 30, 0, time.UTC),
	Proxies: stats.Scrapes{Targets: 3, Scraped: 2, Failed: []stats.ScrapeFailure{
		{Workload: "demo/stock-0", Address: "127.0.0.1:20203", Error: "connection refused"}}},
	Services: []stats.ServiceStats{
		{Name: "demo/audit", Signals: stats.Signals{TCP: &stats.TCP{Open: 1, Opened: 150}}},
		{Name: "demo/catalog", Signals: stats.Signals{Requests: 150, Successes: 147, SuccessRate: f(0.98), RPS: 5,
			LatencyMs: &stats.Latency{P50: 0.42, P95: 3.25, P99: 12.6}, TCP: &stats.TCP{Open: 2}}},
	},
	Routes: []stats.RouteStats{{Name: "HTTPRoute demo/catalog-canary", Backends: []string{"demo/catalog-v1", "demo/catalog-v2"},
		Signals: stats.Signals{Requests: 30, Successes: 30, SuccessRate: f(1), RPS: 1, LatencyMs: &stats.Latency{P50: 250, P95: 1200, P99: 10000}}}},
	Workloads: []stats.WorkloadStats{{Name: "demo/catalog-v1-0", Signals: stats.Signals{Requests: 3, Successes: 2, SuccessRate: f(2.0 / 3),
		RPS: 0.1, LatencyMs: &stats.Latency{P50: 1, P95: 2, P99: 3}, TCP: &stats.TCP{Open: 1}}}},
	Edges: []stats.EdgeStats{
		{Source: "demo/web-0", Destination: "demo/audit", Signals: stats.Signals{TCP: &stats.TCP{Open: 1}}},
		{Source: "demo/web-0", Destination: "demo/catalog", MTLS: b(true), Signals: stats.Signals{Requests: 150, Successes: 147,
			SuccessRate: f(0.98), RPS: 5, LatencyMs: &stats.Latency{P50: 0.42, P95: 3.25, P99: 12.6}, TCP: &stats.TCP{Open: 2}}},
	},
}

// fakeStats serves sum at /api/v1/stats; windows returns the windows
// asked for so far.
func fakeStats(t *testing.T, sum stats.Summary) (addr string, windows func() []string) {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/stats" {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		asked = append(asked, r.URL.Query().Get("window"))
		mu.Unlock()
		json.NewEncoder(w).Encode(sum)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string { mu.Lock(); defer mu.Unlock(); return asked }
}

// runSplit runs the CLI and returns its standard output and error apart.
func runSplit(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := NewRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestStatTables(t *testing.T) {
	addr, windows := fakeStats(t, statSummary)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"stat"}, `
NAME          SUCCESS  RPS   P50     P95    P99   TCP CONNS
demo/audit    -        0.00  -       -      -     1
demo/catalog  98.00%   5.00  0.42ms  3.2ms  13ms  2
`},
		{[]string{"stat", "svc", "--window", "1m"}, `
NAME          SUCCESS  RPS   P50     P95    P99   TCP CONNS
demo/audit    -        0.00  -       -      -     1
demo/catalog  98.00%   5.00  0.42ms  3.2ms  13ms  2
`},
		{[]string{"stat", "routes"}, `
NAME                           SUCCESS  RPS   P50    P95    P99     BACKENDS
HTTPRoute demo/catalog-canary  100.00%  1.00  250ms  1.20s  10.00s  demo/catalog-v1,demo/catalog-v2
`},
		{[]string{"stat", "workloads", "-w", "10s"}, `
NAME               SUCCESS  RPS   P50    P95    P99    TCP CONNS
demo/catalog-v1-0  66.67%   0.10  1.0ms  2.0ms  3.0ms  1
`},
		{[]string{"stat", "edges"}, `
SOURCE      DESTINATION   MTLS  SUCCESS  RPS   P50     P95    P99   TCP CONNS
demo/web-0  demo/audit    -     -        0.00  -       -      -     1
demo/web-0  demo/catalog  yes   98.00%   5.00  0.42ms  3.2ms  13ms  2
`},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := runSplit(t, append(tc.args, "--admin", addr)...)
			if err != nil {
				t.Fatal(err)
			}
			if out != strings.TrimPrefix(tc.want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", out, strings.TrimPrefix(tc.want, "\n"))
			}
			// The proxy that could not be read is named, on stderr.
			if !strings.Contains(errOut, "1 of 3 proxies could not be read") || !strings.Contains(errOut, "demo/stock-0 (127.0.0.1:20203): connection refused") {
				t.Errorf("stderr: %q", errOut)
			}
		})
	}
	if got := strings.Join(windows(), ","); got != "30s,1m0s,30s,10s,30s" {
		t.Errorf("windows asked for: %s", got)
	}
}

func TestStatJSON(t *testing.T) {
	sum := statSummary
	sum.Routes = []stats.RouteStats{}
	addr, _ := fakeStats(t, sum)
	for _, tc := range []struct {
		kind, list string
	}{{"services", "services"}, {"routes", "routes"}, {"edge", "edges"}, {"workload", "workloads"}} {
		out, _, err := runSplit(t, "stat", tc.kind, "-o", "json", "--admin", addr)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("%s: %v\n%s", tc.kind, err, out)
		}
		for _, key := range []string{"services", "routes", "workloads", "edges"} {
			if _, ok := doc[key]; ok != (key == tc.list) {
				t.Errorf("stat %s -o json: %q present %v", tc.kind, key, ok)
			}
		}
		for _, key := range []string{"window", "from", "to", "seconds", "lastScrape", "proxies"} {
			if _, ok := doc[key]; !ok {
				t.Errorf("stat %s -o json: no %q", tc.kind, key)
			}
		}
	}
	// An empty list is there, empty, for scripts.
	out, _, _ := runSplit(t, "stat", "routes", "-o", "json", "--admin", addr)
	if !strings.Contains(out, `"routes": []`) {
		t.Errorf("no routes: %s", out)
	}
	// What -o json prints decodes as the API's document.
	out, _, _ = runSplit(t, "stat", "-o", "json", "--admin", addr)
	var back stats.Summary
	if err := json.Unmarshal([]byte(out), &back); err != nil || len(back.Services) != 2 || *back.Services[1].SuccessRate != 0.98 ||
		back.Services[1].LatencyMs.P99 != 12.6 || !back.To.Equal(sum.To) {
		t.Errorf("decoded: %+v, %v", back, err)
	}
}

func TestStatErrors(t *testing.T) {
	addr, _ := fakeStats(t, statSummary)
	for _, args := range [][]string{
		{"stat", "pods"},
		{"stat", "services", "edges"},
		{"stat", "--window", "0s"},
		{"stat", "--window", "soon"},
		{"stat", "-o", "yaml"},
	} {
		if _, _, err := runSplit(t, append(args, "--admin", addr)...); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// TestStatOnControlPlane asks a real control plane, which has read no
// proxy twice yet.
func TestStatOnControlPlane(t *testing.T) {
	cp := startControlPlane(t, nil)
	out, errOut, err := runSplit(t, "stat", "--admin", cp.AdminAddr())
	if err != nil {
		t.Fatal(err)
	}
	if out != "NAME  SUCCESS  RPS  P50  P95  P99  TCP CONNS\n" || !strings.Contains(errOut, "no stats yet") {
		t.Errorf("stdout %q, stderr %q", out, errOut)
	}
}
