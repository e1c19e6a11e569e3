//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The documented JSON of GET /api/v1/stats and /api/v1/stats/history
// (docs/observability.md), as a client outside weft reads it.
type statSignals struct {
	Requests    int64    `json:"requests"`
	Successes   int64    `json:"successes"`
	SuccessRate *float64 `json:"successRate"`
	RPS         float64  `json:"rps"`
	LatencyMs   *struct {
		P50, P95, P99 float64
	} `json:"latencyMs"`
	TCP *struct {
		Open, Opened, Closed int64
	} `json:"tcp"`
}

type statRow struct {
	Name        string `json:"name"`
	Source      string `json:"source"`
	Destination string `json:"destination"`
	MTLS        *bool  `json:"mtls"`
	statSignals
}

type statSummary struct {
	Window     string    `json:"window"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	Seconds    float64   `json:"seconds"`
	LastScrape time.Time `json:"lastScrape"`
	Proxies    struct {
		Targets, Scraped int
		Failed           []json.RawMessage
	} `json:"proxies"`
	Services []statRow `json:"services"`
	Edges    []statRow `json:"edges"`
}

type statHistory struct {
	Points []struct {
		Time     time.Time `json:"time"`
		Seconds  float64   `json:"seconds"`
		Requests int64     `json:"requests"`
		RPS      float64   `json:"rps"`
	} `json:"points"`
}

func (s statSummary) row(rows []statRow, name string) *statRow {
	for i := range rows {
		if rows[i].Name == name || rows[i].Source+" -> "+rows[i].Destination == name {
			return &rows[i]
		}
	}
	return nil
}

// timedAnswer is one call and when it started and ended.
type timedAnswer struct {
	answer
	start, end time.Time
}

// TestStatOnDemo checks that `weft stat` counts what a client counted, on
// a running `weft up --demo`: with the demo's load generator kept away
// from web (so only the test calls catalog), 600 calls to catalog at a
// steady 40/s through web's outbound port, a tenth of them failing at
// catalog's fault switches. The request count, success rate and request
// rate of demo/catalog must agree with the client's within 1%.
func TestStatOnDemo(t *testing.T) {
	d := startDemo(t)
	const web, catalog = "demo/web-0", "demo/catalog"
	adminURL := "http://" + d.cp.adminAddr()

	// The load generator calls web, which calls catalog: deny it at web,
	// so the calls to catalog are the test's alone. In force once web's
	// proxy has denied one; then its calls to catalog stop.
	deny := filepath.Join(d.manifests, "stat-no-loadgen.yaml")
	if err := os.WriteFile(deny, []byte(`apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: stat-no-loadgen, namespace: demo}
spec:
  targetRef: {kind: Service, name: web}
  action: Deny
  rules:
  - from: [{serviceAccount: loadgen}]
`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(deny) })
	denied := metricLabels{"decision": "deny", "source_identity": "spiffe://weft.local/ns/demo/sa/loadgen"}
	eventually(t, 20*time.Second, "web's proxy denies the load generator", func() error {
		if n := d.metric(t, web, "weft_inbound_authz_decisions_total", denied); n == 0 {
			return fmt.Errorf("no denial yet")
		}
		return nil
	})
	toCatalog := metricLabels{"direction": "outbound", "destination_service": catalog}
	var quietSince time.Time
	eventually(t, 10*time.Second, "web's calls to catalog stop", func() error {
		quietSince = time.Now()
		before := d.metric(t, web, "weft_requests_total", toCatalog)
		time.Sleep(time.Second) // five of the load generator's ticks
		if after := d.metric(t, web, "weft_requests_total", toCatalog); after != before {
			return fmt.Errorf("web called catalog %v times in a second", after-before)
		}
		return nil
	})

	d.setFaults(t, "demo/catalog-v1-0", "error_rate=0.1")
	d.setFaults(t, "demo/catalog-v2-0", "error_rate=0.1")

	// The window starts at a scrape after the load generator stopped and
	// before the first call, and ends at one after the last call.
	getStats := func(window string) statSummary {
		t.Helper()
		out, err := d.cp.weftOut("stat", "services", "--window", window, "-o", "json")
		if err != nil {
			t.Fatalf("weft stat services -o json: %v\n%s", err, out)
		}
		var s statSummary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("weft stat services -o json: %v\n%s", err, out)
		}
		return s
	}
	scrapeAfter := func(after time.Time) time.Time {
		t.Helper()
		var at time.Time
		eventually(t, 15*time.Second, "a scrape after "+after.Format(time.StampMilli), func() error {
			var s statSummary
			if err := getJSON(adminURL+"/api/v1/stats?window=5s", &s); err != nil {
				return err
			}
			if at = s.LastScrape; !at.After(after) {
				return fmt.Errorf("last scrape %s", at.Format(time.StampMilli))
			}
			if s.Proxies.Scraped != s.Proxies.Targets || s.Proxies.Targets != 6 {
				return fmt.Errorf("proxies: %+v", s.Proxies)
			}
			return nil
		})
		return at
	}
	first := scrapeAfter(quietSince)

	const n, rate = 600, 40
	calls := make([]timedAnswer, n)
	tick := time.NewTicker(time.Second / rate)
	var wg sync.WaitGroup
	for i := range n {
		<-tick.C
		wg.Go(func() {
			start := time.Now()
			a := d.catalogGet(t)
			calls[i] = timedAnswer{answer: a, start: start, end: time.Now()}
		})
	}
	wg.Wait()
	tick.Stop()
	ok, started, ended := 0, calls[0].start, calls[0].end
	var took []time.Duration
	for _, c := range calls {
		if c.code == http.StatusOK {
			ok++
		}
		started, ended = minTime(started, c.start), maxTime(ended, c.end)
		took = append(took, c.took)
	}
	slices.Sort(took)
	clientRate := float64(ok) / n
	t.Logf("client: %d calls in %s (%.1f/s), %d ok (%.2f%%), p50 %s p99 %s", n, ended.Sub(started).Round(time.Millisecond),
		n/ended.Sub(started).Seconds(), ok, clientRate*100, took[n/2], took[n*99/100])
	if ok == n || ok < n/2 {
		t.Fatalf("%d of %d calls succeeded: the fault switches did not work", ok, n)
	}
	// The proxy counts a call as it answers it, a hair before the client
	// has read the answer.
	last := scrapeAfter(ended.Add(100 * time.Millisecond))

	// The window reaching back from the newest scrape to the first; a
	// scrape in between moves the newest, so ask again.
	var s statSummary
	for range 3 {
		s = getStats(last.Sub(first).String())
		if s.From.Equal(first) {
			break
		}
		last = s.To
	}
	if !s.From.Equal(first) || s.From.After(started) || !s.To.After(ended) {
		t.Fatalf("window %s..%s, want from the scrape at %s, before the first call at %s, to after the last at %s",
			s.From, s.To, first, started, ended)
	}
	c := s.row(s.Services, catalog)
	if c == nil || c.SuccessRate == nil || c.LatencyMs == nil || c.TCP == nil {
		t.Fatalf("no stats of %s: %+v", catalog, s)
	}
	t.Logf("weft stat: %s over %.3fs: %d requests, %.2f rps, %d ok (%.2f%%), p50 %.2fms p95 %.2fms p99 %.2fms, %d TCP connections open",
		catalog, s.Seconds, c.Requests, c.RPS, c.Successes, *c.SuccessRate*100, c.LatencyMs.P50, c.LatencyMs.P95, c.LatencyMs.P99, c.TCP.Open)
	within := func(what string, got, want float64) {
		t.Helper()
		off := math.Abs(got-want) / want
		t.Logf("%s: weft stat %.4f, client %.4f (%.3f%% apart)", what, got, want, off*100)
		if off > 0.01 {
			t.Errorf("%s: weft stat says %.4f, the client %.4f: %.2f%% apart, want within 1%%", what, got, want, off*100)
		}
	}
	within("requests", float64(c.Requests), n)
	within("success rate", *c.SuccessRate, clientRate)
	within("requests per second of the window", c.RPS, n/s.Seconds)
	if c.TCP.Open < 1 {
		t.Errorf("catalog: %d TCP connections open, want the client's and web's", c.TCP.Open)
	}

	// The history: the points inside the steady stream of calls have the
	// rate the client made. They are compared together, as a call ending
	// within the few milliseconds between a scrape's time and its read of
	// web's proxy counts in the point before the one the client puts it
	// in: one call of a point's 200 is 0.5%.
	var h statHistory
	if err := getJSON(adminURL+"/api/v1/stats/history?service="+catalog, &h); err != nil {
		t.Fatal(err)
	}
	var inside, insideSeconds float64
	var counted, insideRequests int64
	for _, p := range h.Points {
		from := p.Time.Add(-time.Duration(p.Seconds * float64(time.Second)))
		if p.Time.After(first) && !p.Time.After(last) {
			counted += p.Requests
		}
		if from.Before(started) || p.Time.After(ended) {
			continue
		}
		clientCalls := 0
		for _, call := range calls {
			if call.end.After(from) && !call.end.After(p.Time) {
				clientCalls++
			}
		}
		t.Logf("history point at %s over %.3fs: %d requests (%.2f/s), client %d", p.Time.Format(time.StampMilli), p.Seconds,
			p.Requests, p.RPS, clientCalls)
		inside += float64(clientCalls)
		insideRequests += p.Requests
		insideSeconds += p.Seconds
	}
	if insideSeconds == 0 {
		t.Errorf("no point of the history inside the calls from %s to %s: %+v", started, ended, h.Points)
	} else {
		within("requests per second inside the calls", float64(insideRequests)/insideSeconds, inside/insideSeconds)
	}
	if counted != c.Requests {
		t.Errorf("the history's points of the window count %d requests, the window %d", counted, c.Requests)
	}

	// The table and the edges, as a user reads them.
	out, err := d.cp.weft("stat")
	if err != nil || !strings.Contains(out, "NAME") || !strings.Contains(out, catalog) {
		t.Errorf("weft stat: %v\n%s", err, out)
	}
	out, err = d.cp.weftOut("stat", "edges", "-o", "json")
	if err != nil {
		t.Fatalf("weft stat edges: %v\n%s", err, out)
	}
	var edges statSummary
	if err := json.Unmarshal([]byte(out), &edges); err != nil {
		t.Fatal(err)
	}
	if e := edges.row(edges.Edges, web+" -> "+catalog); e == nil || e.MTLS == nil || !*e.MTLS {
		t.Errorf("edge web -> catalog is not mTLS: %+v", e)
	}
}

func getJSON(url string, into any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
