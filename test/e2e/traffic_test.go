//go:build e2e

package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

const retryPolicyYAML = `apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: http-retries, namespace: e2e}
spec:
  targetRef: {kind: Service, name: http}
  retryOn: [5xx]
  attempts: 2
  backoff: {base: 1ms, max: 10ms}
  budget: {ratio: 0.2, minPerSecond: 10, window: 10s}
`

const faultPolicyYAML = `apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: http-chaos, namespace: e2e}
spec:
  targetRef: {kind: Service, name: http}
  match: {headers: [{name: x-chaos, value: "on"}]}
  abort: {httpStatus: 418, percent: 50}
`

// counter reads one sample of a counter from a proxy's /metrics.
func counter(t *testing.T, adminPort int, series string) int {
	t.Helper()
	body, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(regexp.QuoteMeta(series) + ` ([0-9.e+]+)`).FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return int(v)
}

// TestRetriesAndFaults: a RetryPolicy hides a backend that fails every
// other request, its budget stops a retry storm when the backend fails
// them all, and a FaultPolicy aborts its share of matching requests.
func TestRetriesAndFaults(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	url := func(q string) string { return fmt.Sprintf("http://127.0.0.1:%d/?%s", c.http, q) }

	m.write("retries.yaml", retryPolicyYAML)
	eventually(t, 15*time.Second, "the retry policy in force", func() error {
		out, _ := m.weft("get", "policies")
		if !strings.Contains(out, "http-retries") {
			return fmt.Errorf("policies:\n%s", out)
		}
		if code, _ := fetch(t, url("fail=half")); code != http.StatusOK {
			return fmt.Errorf("a request to the half-failing backend got %d", code)
		}
		return nil
	})
	for i := range 100 {
		if code, body := fetch(t, url("fail=half")); code != http.StatusOK {
			t.Fatalf("request %d to the half-failing backend: %d %s, want every failure hidden by a retry", i, code, body)
		}
	}
	retried := counter(t, c.admin, `weft_outbound_retries_total{outcome="retried",service="e2e/http"}`)
	if retried < 100 {
		t.Errorf("the client proxy counts %d retries, want at least 100", retried)
	}

	// Everything fails: the budget (20% of the requests in the window, plus
	// 10/s over it) holds retries far below the 2 per call asked for.
	before := f.b.hits.Load()
	const storm = 300
	for range storm {
		fetch(t, url("fail=all"))
	}
	budget := int(0.2*float64(100+storm)) + 10*10 - retried + 5
	if tries := int(f.b.hits.Load() - before); tries > storm+budget {
		t.Errorf("%d requests reached the failing backend for %d calls, want at most %d: the budget did not stop the storm", tries, storm, storm+budget)
	}
	if n := counter(t, c.admin, `weft_outbound_retries_total{outcome="budget_exhausted",service="e2e/http"}`); n == 0 {
		t.Error("no retry was refused by the budget")
	}

	// Faults: half of the matching requests are aborted, the others pass.
	m.write("chaos.yaml", faultPolicyYAML)
	chaos := func() int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url(""), nil)
		req.Header.Set("X-Chaos", "on")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	eventually(t, 15*time.Second, "the fault policy in force", func() error {
		for range 20 {
			if chaos() == http.StatusTeapot {
				return nil
			}
		}
		return fmt.Errorf("no request aborted")
	})
	aborted := 0
	const n = 400
	for range n {
		if chaos() == http.StatusTeapot {
			aborted++
		}
	}
	if aborted < n*40/100 || aborted > n*60/100 {
		t.Errorf("%d of %d matching requests aborted, want about half", aborted, n)
	}
	if code, _ := fetch(t, url("")); code != http.StatusOK {
		t.Errorf("a request without the header got %d", code)
	}
}

const breakerPolicyYAML = `apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: http-breaker, namespace: e2e}
spec:
  targetRef: {kind: Service, name: http}
  outlierDetection: {consecutive5xx: 2, baseEjectionTime: 60s, maxEjectionPercent: 50}
`

// TestOutlierDetection: of two endpoints, the one that fails every
// request is ejected after two failures in a row, and then gets none.
func TestOutlierDetection(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	secondServer(t, m)
	// Round-robin keeps sending requests to the failing endpoint, which the
	// latency balancer would shun after its first failure: only outlier
	// detection stops it.
	m.write("services.yaml", strings.Replace(servicesYAML, "metadata: {name: http, namespace: e2e}",
		"metadata: {name: http, namespace: e2e, annotations: {weft.dev/load-balancer: round-robin}}", 1))
	m.write("breaker.yaml", breakerPolicyYAML)
	eventually(t, 15*time.Second, "the breaker policy in force", func() error {
		if out, _ := m.weft("get", "policies"); !strings.Contains(out, "http-breaker") || !strings.Contains(out, "in force") {
			return fmt.Errorf("policies:\n%s", out)
		}
		return nil
	})
	time.Sleep(time.Second) // the proxies take the policy
	failures := 0
	for range 100 {
		if code, _ := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/?fail=server-1", c.http)); code != http.StatusOK {
			failures++
		}
	}
	if failures > 4 {
		t.Errorf("%d of 100 requests failed: server-1 was not ejected", failures)
	}
	if n := counter(t, c.admin, `weft_outbound_ejections_total{service="e2e/http"}`); n < 1 {
		t.Error("no ejection counted")
	}
}

// secondServer adds workload server-1 behind the e2e services, with its
// proxy ready and its endpoint known.
func secondServer(t *testing.T, m *mesh) *backend {
	t.Helper()
	b1 := startBackend(t, "server-1")
	admin1 := freePort(t)
	m.write("server-1.yaml", serverYAML("server-1", b1, freePort(t), admin1))
	m.proxy("e2e/server-1", "server", admin1)
	waitReady(t, admin1)
	eventually(t, 15*time.Second, "server-1 serving", func() error {
		if !strings.Contains(m.endpoints("e2e/http"), "server-1") {
			return fmt.Errorf("endpoints: %s", m.endpoints("e2e/http"))
		}
		return nil
	})
	return b1
}

// TestLatencyAwareBalancing: of two endpoints, the one 50ms slower gets
// few of the requests.
func TestLatencyAwareBalancing(t *testing.T) {
	f := serverSide(t)
	secondServer(t, f.m)
	byBackend := map[string]int{}
	for range 200 {
		code, backend, err := routedGet(t.Context(), f.c.http, "/?slow=server-1&sleep=50ms")
		if err != nil || code != http.StatusOK {
			t.Fatalf("%d %v", code, err)
		}
		byBackend[backend]++
	}
	if byBackend["server-0"] < 150 {
		t.Errorf("the fast endpoint got %d of 200 requests (%v), want most", byBackend["server-0"], byBackend)
	}
}

const rateLimitYAML = `apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: http-limit, namespace: e2e}
spec:
  targetRef: {kind: Service, name: http}
  requestsPerSecond: 1
  burst: 5
`

// TestRateLimit: the server's proxy lets a burst through, then answers
// 429, and counts it.
func TestRateLimit(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	m.write("limit.yaml", rateLimitYAML)
	eventually(t, 15*time.Second, "the rate limit in force", func() error {
		if code, _ := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http)); code != http.StatusTooManyRequests {
			return fmt.Errorf("got %d", code)
		}
		return nil
	})
	// The burst is spent: at 1/s, nearly every request of a quick run is
	// refused.
	start := time.Now()
	limited := 0
	for range 20 {
		if code, _ := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/", c.http)); code == http.StatusTooManyRequests {
			limited++
		}
	}
	if allowed := 20 - limited; float64(allowed) > time.Since(start).Seconds()+1 {
		t.Errorf("%d of 20 requests passed in %s, want at most one a second", allowed, time.Since(start).Round(time.Millisecond))
	}
	if n := counter(t, f.serverAdmin, `weft_inbound_rate_limited_total{policy="RateLimitPolicy e2e/http-limit"}`); n < limited {
		t.Errorf("the server proxy counts %d limited, want at least %d", n, limited)
	}
}
