//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestTrafficOnDemo walks the traffic management of docs/traffic.md on one
// running `weft up --demo`: retries hiding catalog v2's failures, the retry
// budget holding back a storm, fault injection, a route timeout, and, with
// a second catalog v1 replica added to the running demo, latency-aware
// balancing and outlier ejection between the two v1 replicas. Each scenario
// applies its manifests to the demo's manifest directory, waits until they
// are in force in web's proxy, measures through web or web's outbound port
// for catalog, and takes them away again.
//
// The scenarios share web's proxy, whose balancer keeps an estimate of each
// endpoint's latency that takes tens of seconds to fade: a retried failure
// counts as a second, a slow answer as itself. So the retries, which need
// catalog v2 as attractive as a fresh start leaves it, come first; the
// storm and the timeout route to catalog-v2 alone, and the fault counts
// per request whichever catalog answers; balancing and ejection get a
// balancer of their own, routing catalog to catalog-v1 and its two
// replicas.
func TestTrafficOnDemo(t *testing.T) {
	d := startDemo(t)
	catalogV2, web := "demo/catalog-v2-0", "demo/web-0"

	t.Run("retries hide a half-failing catalog v2", func(t *testing.T) {
		// The balancer alone shuns a failing endpoint (it counts failures
		// as slow answers), so a weighted route pins v2's share: half the
		// calls to catalog go to v2 whatever its health.
		d.apply(t, demoObject{"catalog-half-v2.yaml", "HTTPRoute", "catalog-half-v2", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-half-v2, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs: [{name: catalog-v1, port: 80, weight: 50}, {name: catalog-v2, port: 80, weight: 50}]
`})
		d.setFaults(t, catalogV2, "error_rate=0.5")
		// Without a policy, web's callers see v2's failures.
		base := tally(d.fanOut(200, 1, func() answer { return d.webGet(t) }))
		t.Logf("catalog v2 failing half, no retries: %s", base)
		if base.codes[200] > 190 {
			t.Fatalf("catalog v2 failing half, no retries: %s, want at least 10 of 200 calls through web failing", base)
		}
		retried := metricLabels{"service": "demo/catalog-v2", "outcome": "retried"}
		exhausted := metricLabels{"service": "demo/catalog-v2", "outcome": "budget_exhausted"}
		retried0 := d.metric(t, web, "weft_outbound_retries_total", retried)
		exhausted0 := d.metric(t, web, "weft_outbound_retries_total", exhausted)
		// v2 has one workload, so each retry goes back to it and succeeds
		// half the time: 8 retries leave 1 call in 512 failing. A failing
		// half needs about one retry per call, which the budget allows.
		d.apply(t, demoObject{"catalog-v2-retries.yaml", "RetryPolicy", "catalog-v2-retries", `apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: catalog-v2-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog-v2}
  retryOn: [5xx, reset]
  attempts: 8
  perTryTimeout: 500ms
  backoff: {base: 1ms, max: 10ms}
  budget: {ratio: 1, minPerSecond: 20, window: 10s}
`})
		with := tally(d.fanOut(200, 1, func() answer { return d.webGet(t) }))
		n := d.metric(t, web, "weft_outbound_retries_total", retried) - retried0
		t.Logf("with the RetryPolicy: %s; web's proxy retried %v", with, n)
		if with.codes[200] < 198 {
			t.Errorf("with the RetryPolicy: %s, want at most 2 of 200 calls through web failing", with)
		}
		if n < 10 {
			t.Errorf("web's proxy counts %v retries of catalog-v2, want about one per call to v2", n)
		}
		if e := d.metric(t, web, "weft_outbound_retries_total", exhausted) - exhausted0; e != 0 {
			t.Errorf("web's proxy counts %v retries of catalog-v2 refused by the budget, want none", e)
		}
	})

	t.Run("the retry budget stops a retry storm", func(t *testing.T) {
		// Every call to catalog goes to v2, which fails them all; v2's
		// RetryPolicy asks for 3 retries of each, its budget allows 20% of
		// the requests plus 1/s over 10s.
		d.apply(t, demoObject{"catalog-to-v2.yaml", "HTTPRoute", "catalog-to-v2", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-to-v2, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs: [{name: catalog-v2, port: 80}]
`})
		d.setFaults(t, catalogV2, "error_rate=1")
		const ratio, floor, window = 0.2, 1 * 10, 10 * time.Second
		fromLoadgen := metricLabels{"source_identity": "spiffe://weft.local/ns/demo/sa/loadgen"}
		fromWeb := metricLabels{"source_identity": "spiffe://weft.local/ns/demo/sa/web"}
		retried := metricLabels{"service": "demo/catalog-v2", "outcome": "retried"}
		exhausted := metricLabels{"service": "demo/catalog-v2", "outcome": "budget_exhausted"}
		// From before the policy: the load generator's calls through web
		// count in the budget too.
		start := time.Now()
		loadgen0 := d.metric(t, web, "weft_inbound_authz_decisions_total", fromLoadgen)
		reached0 := d.metric(t, catalogV2, "weft_inbound_authz_decisions_total", fromWeb)
		retried0 := d.metric(t, web, "weft_outbound_retries_total", retried)
		exhausted0 := d.metric(t, web, "weft_outbound_retries_total", exhausted)
		d.apply(t, demoObject{"catalog-v2-retries.yaml", "RetryPolicy", "catalog-v2-retries", fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: catalog-v2-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog-v2}
  retryOn: [5xx]
  attempts: 3
  backoff: {base: 1ms, max: 10ms}
  budget: {ratio: %v, minPerSecond: %d, window: %s}
`, ratio, floor/10, window)})
		const n = 300
		storm := tally(d.fanOut(n, 10, func() answer { return d.catalogGet(t) }))
		took := time.Since(start)
		requests := n + d.metric(t, web, "weft_inbound_authz_decisions_total", fromLoadgen) - loadgen0
		retries := d.metric(t, web, "weft_outbound_retries_total", retried) - retried0
		refused := d.metric(t, web, "weft_outbound_retries_total", exhausted) - exhausted0
		reached := d.metric(t, catalogV2, "weft_inbound_authz_decisions_total", fromWeb) - reached0
		// The window slides in tenths: over took, the floor is granted at
		// most once per 0.9 window, plus once.
		bound := ratio*requests + floor*(1+math.Ceil(took.Seconds()/(0.9*window.Seconds())))
		t.Logf("storm of %d calls (%.0f to catalog-v2 with the load generator's) in %s: %s; %v retried, %v refused by the budget (bound %.0f, %.0f without a budget); catalog v2 took %v requests from web",
			n, requests, took.Round(time.Millisecond), storm, retries, refused, bound, 3*requests, reached)
		if storm.codes[500] != n {
			t.Errorf("storm: %s, want every call failing 500: the callers see v2's failures", storm)
		}
		if retries < floor/2 || retries > bound {
			t.Errorf("web's proxy retried %v times, want between %d and the budget's %.0f", retries, floor/2, bound)
		}
		if refused < n/2 {
			t.Errorf("web's proxy counts %v retries refused by the budget, want at least %d", refused, n/2)
		}
		if reached < n || reached > requests+bound {
			t.Errorf("catalog v2 took %v requests from web, want between %d and %.0f", reached, n, requests+bound)
		}
	})

	t.Run("fault injection delays and aborts its share", func(t *testing.T) {
		const delay = 500 * time.Millisecond
		d.apply(t, demoObject{"catalog-faults.yaml", "FaultPolicy", "catalog-faults", fmt.Sprintf(`apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: catalog-faults, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  match:
    headers: [{name: x-chaos, value: "on"}]
  delay: {fixedDelay: %s, percent: 30}
  abort: {httpStatus: 503, percent: 20}
`, delay)})
		delays := metricLabels{"service": "demo/catalog", "fault": "delay"}
		aborts := metricLabels{"service": "demo/catalog", "fault": "abort"}
		delays0 := d.metric(t, web, "weft_outbound_faults_total", delays)
		aborts0 := d.metric(t, web, "weft_outbound_faults_total", aborts)
		const n = 400
		answers := d.fanOut(n, 25, func() answer { return d.catalogGet(t, "X-Chaos", "on") })
		aborted, delayed := 0, 0
		for _, a := range answers {
			switch {
			case a.code == http.StatusServiceUnavailable && strings.Contains(a.body, "FaultPolicy demo/catalog-faults"):
				aborted++
			case a.code != http.StatusOK:
				t.Errorf("a call with x-chaos got %d %q (%v), want 200 or the policy's 503", a.code, a.body, a.err)
			}
			if a.took >= delay {
				delayed++
			}
		}
		countedDelays := d.metric(t, web, "weft_outbound_faults_total", delays) - delays0
		countedAborts := d.metric(t, web, "weft_outbound_faults_total", aborts) - aborts0
		t.Logf("%d calls with x-chaos: %d aborted 503, %d took %s or more; web's proxy counts %v aborts, %v delays",
			n, aborted, delayed, delay, countedAborts, countedDelays)
		// 20% and 30% of 400 are 80 and 120, with standard deviations of 8
		// and 9.2: 4.5 of them either side.
		if aborted < 44 || aborted > 116 {
			t.Errorf("%d of %d calls aborted, want about 20%%", aborted, n)
		}
		if countedDelays < 79 || countedDelays > 161 {
			t.Errorf("%v of %d calls delayed, want about 30%%", countedDelays, n)
		}
		if countedAborts != float64(aborted) {
			t.Errorf("web's proxy counts %v aborts, the callers saw %d", countedAborts, aborted)
		}
		// Every delay counted held its call back; a call may also be slow
		// on its own, rarely.
		if float64(delayed) < countedDelays || float64(delayed) > countedDelays+10 {
			t.Errorf("%d calls took %s or more, web's proxy counts %v delays", delayed, delay, countedDelays)
		}
		// Without the header, no fault: the load generator's calls and these.
		plain := tally(d.fanOut(20, 1, func() answer { return d.catalogGet(t) }))
		if plain.codes[200] != 20 {
			t.Errorf("calls without x-chaos: %s, want all 200", plain)
		}
		if nd, na := d.metric(t, web, "weft_outbound_faults_total", delays)-delays0, d.metric(t, web, "weft_outbound_faults_total", aborts)-aborts0; nd != countedDelays || na != countedAborts {
			t.Errorf("faults counted rose to %v delays, %v aborts with calls without x-chaos", nd, na)
		}
	})

	t.Run("a route timeout cuts a slow catalog", func(t *testing.T) {
		d.apply(t, demoObject{"catalog-timeout.yaml", "HTTPRoute", "catalog-timeout", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-timeout, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs: [{name: catalog-v2, port: 80}]
    timeouts: {request: 500ms}
`})
		if fast := tally(d.fanOut(5, 1, func() answer { return d.catalogGet(t) })); fast.versions["v2"] != 5 || fast.codes[200] != 5 {
			t.Fatalf("calls routed to catalog v2: %s, want all 200 from v2", fast)
		}
		d.setFaults(t, catalogV2, "latency=3s")
		timeouts := metricLabels{"service": "demo/catalog-v2"}
		timeouts0 := d.metric(t, web, "weft_outbound_timeouts_total", timeouts)
		for _, a := range d.fanOut(10, 10, func() answer { return d.catalogGet(t) }) {
			if a.code != http.StatusGatewayTimeout || !strings.Contains(a.body, "request timeout") || a.took < 450*time.Millisecond || a.took > 2900*time.Millisecond {
				t.Errorf("a call to catalog v2 3s slow: %d %q after %s (%v), want 504 for the route's timeout after 500ms", a.code, a.body, a.took, a.err)
			}
		}
		if a := d.webGet(t); a.code != http.StatusBadGateway || !strings.Contains(a.body, "status 504") {
			t.Errorf("web with catalog v2 3s slow: %d %q, want 502 passing on the route's 504", a.code, a.body)
		}
		if n := d.metric(t, web, "weft_outbound_timeouts_total", timeouts) - timeouts0; n < 11 {
			t.Errorf("web's proxy counts %v timeouts of catalog-v2, want at least 11", n)
		}
	})

	t.Run("two catalog v1 replicas", func(t *testing.T) {
		first, second := "demo/catalog-v1-0", d.addCatalogReplica(t, "catalog-v1-1")
		d.apply(t, demoObject{"catalog-to-v1.yaml", "HTTPRoute", "catalog-to-v1", `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-to-v1, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs: [{name: catalog-v1, port: 80}]
`})
		eventually(t, 20*time.Second, "web's proxy knows both catalog-v1 replicas", func() error {
			if n, err := d.endpoints("demo/web-0", "demo/catalog-v1"); err != nil || n != 2 {
				return fmt.Errorf("%d endpoints of demo/catalog-v1 (%v)", n, err)
			}
			return nil
		})
		// Which replica took a call: the requests from web each one's
		// proxy counted (the load generator's calls through web included).
		fromWeb := metricLabels{"source_identity": "spiffe://weft.local/ns/demo/sa/web"}
		shares := func(t *testing.T, n, workers int) (tallied, float64, float64) {
			t.Helper()
			a0 := d.metric(t, first, "weft_inbound_authz_decisions_total", fromWeb)
			b0 := d.metric(t, second, "weft_inbound_authz_decisions_total", fromWeb)
			answers := tally(d.fanOut(n, workers, func() answer { return d.catalogGet(t) }))
			return answers, d.metric(t, first, "weft_inbound_authz_decisions_total", fromWeb) - a0,
				d.metric(t, second, "weft_inbound_authz_decisions_total", fromWeb) - b0
		}

		t.Run("latency-aware balancing avoids a slow replica", func(t *testing.T) {
			// Both healthy: both take a fair share, so that what follows
			// measures the latency, not a balancer stuck on one endpoint.
			base, a, b := shares(t, 100, 4)
			t.Logf("both healthy: %s; %v to %s, %v to %s", base, a, first, b, second)
			if base.codes[200] != 100 || a < 0.15*(a+b) || b < 0.15*(a+b) {
				t.Fatalf("both replicas healthy: %s, %v and %v requests, want every call answered and each replica taking 15%% or more", base, a, b)
			}
			d.setFaults(t, second, "latency=1s")
			start := time.Now()
			slow, a, b := shares(t, 200, 10)
			t.Logf("%s 1s slower: %s in %s; %v to %s, %v to it", second, slow, time.Since(start).Round(time.Millisecond), a, first, b)
			if slow.codes[200] != 200 || b > 0.2*(a+b) {
				t.Errorf("%s 1s slower: %s, %v requests to it and %v to %s, want at most 20%% to it", second, slow, b, a, first)
			}
		})

		t.Run("outlier detection ejects a failing replica", func(t *testing.T) {
			// The first replica is the one the balancer prefers (the second
			// was just slow), so that no request reaching it shows the
			// ejection, not the balancer's avoidance of a slow endpoint.
			d.setFaults(t, first, "error_rate=1")
			base := tally(d.fanOut(50, 1, func() answer { return d.catalogGet(t) }))
			t.Logf("%s failing every request, no breaker: %s", first, base)
			if base.codes[500] == 0 {
				t.Fatalf("%s failing every request: %s, want its failures seen before the breaker is applied", first, base)
			}
			ejections := metricLabels{"service": "demo/catalog-v1"}
			before := d.metric(t, web, "weft_outbound_ejections_total", ejections)
			d.apply(t, demoObject{"catalog-v1-breaker.yaml", "CircuitBreakerPolicy", "catalog-v1-breaker", `apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: catalog-v1-breaker, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog-v1}
  outlierDetection: {consecutive5xx: 3, baseEjectionTime: 60s, maxEjectionPercent: 50}
`})
			eventually(t, 15*time.Second, "web's proxy ejects "+first, func() error {
				d.fanOut(5, 1, func() answer { return d.catalogGet(t) })
				if n := d.metric(t, web, "weft_outbound_ejections_total", ejections); n <= before {
					return fmt.Errorf("weft_outbound_ejections_total %v", n)
				}
				return nil
			})
			time.Sleep(200 * time.Millisecond) // requests picked before the ejection end
			after, a, b := shares(t, 100, 1)
			t.Logf("after the ejection: %s; %v to %s, %v to %s", after, a, first, b, second)
			if after.codes[200] != 100 {
				t.Errorf("after the ejection of %s: %s, want all 100 calls answered", first, after)
			}
			if a != 0 || b < 100 {
				t.Errorf("after the ejection: %v requests to %s, %v to %s, want none to the first", a, first, b, second)
			}
		})
	})
}

// demoRun is a running `weft up --demo`, known by the table it printed.
type demoRun struct {
	cp        *mesh  // the control plane's admin address, for the CLI
	manifests string // the watched manifest directory
	webURL    string // web's /api/products through the load generator's proxy
	workloads map[string]demoWorkload
	client    *http.Client
	h2c       *http.Client
}

// demoWorkload is one row of weft up's table.
type demoWorkload struct {
	appPort  int
	protocol string         // of the app port: http, http2, grpc, tcp
	admin    string         // the proxy's admin base URL
	calls    map[string]int // "demo/catalog:80" -> the local port for it
}

// demoTable matches a row of weft up's table: workload, app port and
// protocol (none for the load generator), proxy admin, local ports.
var demoTable = regexp.MustCompile(`(?m)^\s+(demo/\S+)\s+(?:(\d+)/(\w+)\s+)?(http://\S+)(.*)$`)

// startDemo runs `weft up --demo` on ports of its own and waits until it
// answers through the mesh with every proxy connected.
func startDemo(t *testing.T) *demoRun {
	t.Helper()
	stateDir := t.TempDir()
	portBase := freeDemoPorts(t)
	grpcPort, adminPort := freePort(t), freePort(t)
	up := start(t, "weft up --demo", "weft", "up", "--demo", "--port-base", strconv.Itoa(portBase),
		"--state-dir", stateDir, "--grpc-addr", fmt.Sprintf("127.0.0.1:%d", grpcPort),
		"--admin-addr", fmt.Sprintf("127.0.0.1:%d", adminPort))
	t.Cleanup(func() { _ = up.stop(syscall.SIGINT, 30*time.Second) })
	d := &demoRun{
		cp:        &mesh{t: t, adminPort: adminPort},
		manifests: filepath.Join(stateDir, "manifests"),
		workloads: map[string]demoWorkload{},
		client:    &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 30 * time.Second},
	}
	h2c := new(http.Protocols)
	h2c.SetUnencryptedHTTP2(true)
	d.h2c = &http.Client{Transport: &http.Transport{Protocols: h2c}, Timeout: 10 * time.Second}
	eventually(t, 60*time.Second, "weft up prints how to reach the demo", func() error {
		m := regexp.MustCompile(`curl (http://127\.0\.0\.1:\d+/\S*)`).FindStringSubmatch(up.Output())
		if m == nil {
			return fmt.Errorf("output so far:\n%s", up.Output())
		}
		d.webURL = m[1]
		return nil
	})
	for _, row := range demoTable.FindAllStringSubmatch(up.Output(), -1) {
		w := demoWorkload{protocol: row[3], admin: row[4], calls: map[string]int{}}
		w.appPort, _ = strconv.Atoi(row[2])
		for _, c := range regexp.MustCompile(`(\d+) -> ([^\s,]+)`).FindAllStringSubmatch(row[5], -1) {
			w.calls[c[2]], _ = strconv.Atoi(c[1])
		}
		d.workloads[row[1]] = w
	}
	for _, name := range []string{"demo/web-0", "demo/catalog-v1-0", "demo/catalog-v2-0"} {
		if w := d.workloads[name]; w.admin == "" || w.appPort == 0 {
			t.Fatalf("no row for %s with its app port and proxy admin in weft up's table:\n%s", name, up.Output())
		}
	}
	if d.workloads["demo/web-0"].calls["demo/catalog:80"] == 0 {
		t.Fatalf("weft up's table has no local port of web for demo/catalog:80:\n%s", up.Output())
	}
	eventually(t, 30*time.Second, "the demo answers through the mesh", func() error {
		if a := d.webGet(t); a.code != http.StatusOK {
			return fmt.Errorf("web: %d %s %v", a.code, a.body, a.err)
		}
		return nil
	})
	eventually(t, 20*time.Second, "every demo proxy connected", func() error {
		out, err := d.cp.weft("get", "proxies")
		if err != nil {
			return err
		}
		for name := range d.workloads {
			if !strings.Contains(out, name) {
				return fmt.Errorf("%s not connected:\n%s", name, out)
			}
		}
		return nil
	})
	return d
}

// freeDemoPorts returns a demo port base whose whole span nothing listens
// on, in a slot of its own beside TestUpDemo's.
func freeDemoPorts(t *testing.T) int {
	t.Helper()
	const span = 500
	for i := range 20 {
		base := 21000 + ((os.Getpid()+7+i)%20)*span
		free := true
		for port := base; port < base+span && free; port++ {
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 100*time.Millisecond); err == nil {
				c.Close()
				free = false
			}
		}
		if free {
			return base
		}
	}
	t.Fatal("no free range of demo ports")
	return 0
}

// answer is how one call through the demo went.
type answer struct {
	code    int
	version string // X-Demo-Version of catalog, or web's catalog_version
	body    string
	took    time.Duration
	err     error
}

// catalogGet calls GET /products of catalog the way web does, through
// web's outbound port for it and as web's identity, with the headers given
// as name, value pairs.
func (d *demoRun) catalogGet(t *testing.T, header ...string) answer {
	url := fmt.Sprintf("http://127.0.0.1:%d/products", d.workloads["demo/web-0"].calls["demo/catalog:80"])
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		return answer{err: err}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return d.do(req, func(resp *http.Response, _ []byte) string { return resp.Header.Get("X-Demo-Version") })
}

// webGet calls web's GET /api/products, as the load generator does.
func (d *demoRun) webGet(t *testing.T) answer {
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, d.webURL, nil)
	if err != nil {
		return answer{err: err}
	}
	return d.do(req, func(_ *http.Response, body []byte) string {
		var p struct {
			CatalogVersion string `json:"catalog_version"`
		}
		_ = json.Unmarshal(body, &p)
		return p.CatalogVersion
	})
}

func (d *demoRun) do(req *http.Request, version func(*http.Response, []byte) string) answer {
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		return answer{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, body: strings.TrimSpace(string(body)), took: time.Since(start), err: err}
	a.version = version(resp, body)
	return a
}

// fanOut makes n calls with call, workers of them at a time.
func (d *demoRun) fanOut(n, workers int, call func() answer) []answer {
	out := make([]answer, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range next {
				out[i] = call()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// tallied counts answers by status code and by version, and the failures
// (not 200) by version.
type tallied struct {
	codes            map[int]int
	versions, failed map[string]int
	errs             int
	firstErr         string
}

func tally(answers []answer) tallied {
	t := tallied{codes: map[int]int{}, versions: map[string]int{}, failed: map[string]int{}}
	for _, a := range answers {
		t.codes[a.code]++
		t.versions[a.version]++
		if a.code != http.StatusOK {
			t.failed[a.version]++
			if t.firstErr == "" {
				t.firstErr = fmt.Sprintf("%d %s %v", a.code, a.body, a.err)
			}
		}
		if a.err != nil {
			t.errs++
		}
	}
	return t
}

func (t tallied) String() string {
	s := fmt.Sprintf("status %v, version %v", t.codes, t.versions)
	if t.firstErr != "" {
		s += fmt.Sprintf(", failed by version %v, first %q", t.failed, t.firstErr)
	}
	return s
}

// setFaults flips a demo app's fault switches (query: latency=…,
// error_rate=…) at its own port, and switches them off when the test ends.
func (d *demoRun) setFaults(t *testing.T, workload, query string) {
	t.Helper()
	if err := d.postFaults(workload, query); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.postFaults(workload, "latency=0s&latency_jitter=0s&error_rate=0"); err != nil {
			t.Error(err)
		}
	})
}

func (d *demoRun) postFaults(workload, query string) error {
	w := d.workloads[workload]
	client := d.client
	if w.protocol == "http2" { // HTTP/2 with prior knowledge alone
		client = d.h2c
	}
	resp, err := client.Post(fmt.Sprintf("http://127.0.0.1:%d/_demo/faults?%s", w.appPort, query), "", nil)
	if err != nil {
		return fmt.Errorf("faults of %s: %w", workload, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("faults of %s: %s %s", workload, resp.Status, body)
	}
	return nil
}

// metricLabels selects the samples of a metric that carry these labels.
type metricLabels map[string]string

// metric sums the samples of a counter at a workload's proxy admin
// /metrics that carry the labels given; none is 0.
func (d *demoRun) metric(t *testing.T, workload, name string, labels metricLabels) float64 {
	t.Helper()
	resp, err := d.client.Get(d.workloads[workload].admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", workload, err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics of %s: %v", workload, err)
	}
	sum := 0.0
	for _, m := range families[name].GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range labels {
			match = match && have[k] == v
		}
		if match {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// configVersion is the model version of the config a proxy serves.
func (d *demoRun) configVersion(workload string) (uint64, error) {
	resp, err := d.client.Get(d.workloads[workload].admin + "/config")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var dump struct {
		Version uint64 `json:"version"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dump); err != nil {
		return 0, fmt.Errorf("config of %s: %w", workload, err)
	}
	return dump.Version, nil
}

// endpoints is how many endpoints of service a workload's proxy has.
func (d *demoRun) endpoints(workload, service string) (int, error) {
	resp, err := d.client.Get(d.workloads[workload].admin + "/config")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var dump struct {
		Services []struct {
			Ref       string            `json:"ref"`
			Endpoints []json.RawMessage `json:"endpoints"`
		} `json:"services"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&dump); err != nil {
		return 0, fmt.Errorf("config of %s: %w", workload, err)
	}
	for _, s := range dump.Services {
		if s.Ref == service {
			return len(s.Endpoints), nil
		}
	}
	return 0, nil
}

// demoObject is a route or policy for the demo's manifest directory.
type demoObject struct {
	file, kind, name, yaml string
}

// apply writes o to the manifest directory, as an editor's save would, and
// waits until the control plane has it in force and web's proxy has taken
// a new config; o is removed the same way when the test ends.
func (d *demoRun) apply(t *testing.T, o demoObject) {
	t.Helper()
	if err := d.change(o, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.change(o, false); err != nil {
			t.Error(err)
		}
	})
}

// change writes o (or removes it) and waits until the control plane says
// it is in force (or no longer knows it), and web's proxy has a config of
// a later model version than before.
func (d *demoRun) change(o demoObject, add bool) error {
	before, err := d.configVersion("demo/web-0")
	if err != nil {
		return err
	}
	path := filepath.Join(d.manifests, o.file)
	if add {
		tmp := filepath.Join(d.manifests, "."+o.file+".tmp")
		if err := os.WriteFile(tmp, []byte(o.yaml), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	} else if err := os.Remove(path); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := d.inForce(o, add)
		if err == nil {
			var v uint64
			if v, err = d.configVersion("demo/web-0"); err == nil && v <= before {
				err = fmt.Errorf("web's proxy still serves config version %d", v)
			}
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s %s of %s: not within 20s: %w", o.kind, o.name, o.file, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// inForce checks with `weft get policies|routes -o json` that o is in
// force (want) or unknown (!want).
func (d *demoRun) inForce(o demoObject, want bool) error {
	what := "policies"
	if strings.HasSuffix(o.kind, "Route") || o.kind == "TrafficSplit" {
		what = "routes"
	}
	out, err := d.cp.weftOut("get", what, "-o", "json")
	if err != nil {
		return fmt.Errorf("weft get %s: %v: %s", what, err, out)
	}
	var objs []struct {
		Kind, Namespace, Name string
		Status                json.RawMessage
	}
	if err := json.Unmarshal([]byte(out), &objs); err != nil {
		return fmt.Errorf("weft get %s -o json: %v: %s", what, err, out)
	}
	for _, obj := range objs {
		if obj.Kind != o.kind || obj.Namespace != "demo" || obj.Name != o.name {
			continue
		}
		if !want {
			return fmt.Errorf("%s %s still known: %s", o.kind, o.name, out)
		}
		// A policy's status is one object, a route's one per parent.
		var one struct{ InForce bool }
		var each []struct{ InForce bool }
		ok := json.Unmarshal(obj.Status, &one) == nil && one.InForce
		if json.Unmarshal(obj.Status, &each) == nil && len(each) > 0 {
			ok = true
			for _, s := range each {
				ok = ok && s.InForce
			}
		}
		if !ok {
			return fmt.Errorf("%s %s not in force: %s", o.kind, o.name, obj.Status)
		}
		return nil
	}
	if want {
		return errors.New(o.kind + " " + o.name + " not known yet")
	}
	return nil
}

// addCatalogReplica adds a catalog v1 workload to the running demo: its
// manifest, whose proxy weft up starts, and its app, started here. It
// returns the workload's name, known to d's helpers, and takes the replica
// away when the test ends.
func (d *demoRun) addCatalogReplica(t *testing.T, name string) string {
	t.Helper()
	app, inbound, admin, stock := freePort(t), freePort(t), freePort(t), freePort(t)
	start(t, "catalog replica "+name, "weft", "demo", "serve", "catalog", "--listen", fmt.Sprintf("127.0.0.1:%d", app),
		"--version", "v1", "--stock-addr", fmt.Sprintf("127.0.0.1:%d", stock))
	file := filepath.Join(d.manifests, name+".yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, `apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: %s
  namespace: demo
  labels: {app: catalog, version: v1}
spec:
  serviceAccount: catalog
  address: 127.0.0.1
  ports: [{name: http, port: %d, protocol: http}]
  proxy: {inboundPort: %d, adminPort: %d}
  outbound: [{service: stock, port: 9090, localPort: %d}]
`, name, app, inbound, admin, stock), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(file) })
	ref := "demo/" + name
	d.workloads[ref] = demoWorkload{appPort: app, protocol: "http", admin: fmt.Sprintf("http://127.0.0.1:%d", admin)}
	waitReady(t, admin)
	eventually(t, 20*time.Second, name+" serving catalog-v1", func() error {
		out, err := d.cp.weft("get", "services")
		if err != nil {
			return err
		}
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "demo/catalog-v1 ") && strings.Contains(line, name) {
				return nil
			}
		}
		return fmt.Errorf("services:\n%s", out)
	})
	return ref
}
