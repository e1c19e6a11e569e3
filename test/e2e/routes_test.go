//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const canaryServiceYAML = `apiVersion: v1
kind: Service
metadata: {name: http-canary, namespace: e2e}
spec:
  selector: {app: canary}
  ports: [{name: http, port: 80, targetPort: http1, appProtocol: http}]
`

// canaryRoute sends alice to the canary, cuts /slow after 200ms, and
// splits the rest 90/10.
const canaryRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-canary, namespace: e2e}
spec:
  parentRefs: [{group: "", kind: Service, name: http, port: 80}]
  rules:
  - matches: [{headers: [{name: x-user, value: alice}]}]
    backendRefs: [{name: http-canary, port: 80}]
  - matches: [{path: {type: PathPrefix, value: /slow}}]
    backendRefs: [{name: http, port: 80}]
    timeouts: {request: 200ms}
  - backendRefs:
    - {name: http, port: 80, weight: 90}
    - {name: http-canary, port: 80, weight: 10}
`

// routedGet makes one request through the client's outbound port for
// service http and returns the status and the backend that answered.
func routedGet(ctx context.Context, port int, path string, header ...string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, path), nil)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Backend"), nil
}

// TestRoutes puts a GAMMA HTTPRoute on service http: a measured 90/10
// split, a header route for one user, a request timeout, and a bad edit
// that leaves the routing in force.
func TestRoutes(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	canary := startBackend(t, "canary-0")
	canaryAdmin := freePort(t)
	m.write("canary.yaml", strings.Replace(serverYAML("canary-0", canary, freePort(t), canaryAdmin), "app: server", "app: canary", 1)+"---\n"+canaryServiceYAML)
	m.proxy("e2e/canary-0", "server", canaryAdmin)
	waitReady(t, canaryAdmin)

	m.write("route.yaml", canaryRoute)
	eventually(t, 15*time.Second, "alice routed to the canary", func() error {
		code, backend, err := routedGet(t.Context(), c.http, "/", "X-User", "alice")
		if err != nil || code != 200 || backend != "canary-0" {
			return fmt.Errorf("%d from %q: %v", code, backend, err)
		}
		return nil
	})

	split := func() (canaryShare float64) {
		t.Helper()
		const total, workers = 10000, 8
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for range total / workers {
					code, backend, err := routedGet(t.Context(), c.http, fmt.Sprintf("/w%d", w))
					mu.Lock()
					if err != nil || code != 200 {
						counts[fmt.Sprintf("error %d %v", code, err)]++
					} else {
						counts[backend]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if counts["server-0"]+counts["canary-0"] != total {
			t.Fatalf("split: %v", counts)
		}
		return float64(counts["canary-0"]) / total
	}
	if share := split(); share < 0.08 || share > 0.12 {
		t.Errorf("canary got %.1f%% of 10,000 requests, want 10%% within 2%%", 100*share)
	} else {
		t.Logf("canary got %.2f%% of 10,000 requests", 100*share)
	}

	// The route's timeout cuts a slow call.
	start := time.Now()
	code, _, err := routedGet(t.Context(), c.http, "/slow?sleep=3s")
	if err != nil || code != http.StatusGatewayTimeout {
		t.Errorf("slow call: %d, %v; want 504", code, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("slow call took %s; the 200ms timeout did not cut it", took)
	}

	// Bad edits are reported, naming object and field, and the routing
	// stays as it was: a negative weight (refused when the file is read),
	// an unknown backend, and a route taking a match the canary route has
	// (both refused by the model, which keeps the last admitted version).
	badEdits := []struct {
		desc, file, yaml, want string
	}{
		{"negative weight", "route.yaml", strings.Replace(canaryRoute, "weight: 10}", "weight: -10}", 1),
			"spec.rules[2].backendRefs[1].weight"},
		{"unknown backend", "route.yaml", strings.Replace(canaryRoute, "name: http-canary, port: 80}]", "name: http-canary2, port: 80}]", 1),
			"spec.rules[0].backendRefs[0].name: service e2e/http-canary2 does not exist"},
		{"conflicting match", "conflict.yaml", strings.NewReplacer("name: http-canary, namespace", "name: http-thief, namespace",
			"name: http-canary, port: 80}]", "name: http, port: 80}]").Replace(canaryRoute),
			"httproute e2e/http-thief: spec.rules[0].matches[0]: the same match as HTTPRoute e2e/http-canary spec.rules[0].matches[0]"},
	}
	for _, bad := range badEdits {
		m.write(bad.file, bad.yaml)
		eventually(t, 15*time.Second, bad.desc+" reported", func() error {
			out, _ := m.weft("get", "problems")
			if !strings.Contains(out, bad.want) {
				return fmt.Errorf("problems:\n%s", out)
			}
			return nil
		})
		for range 20 {
			if code, backend, err := routedGet(t.Context(), c.http, "/", "X-User", "alice"); err != nil || backend != "canary-0" {
				t.Fatalf("after a bad edit (%s), alice got %d from %q (%v), want the canary still", bad.desc, code, backend, err)
			}
		}
		if out, err := m.weft("get", "routes"); err != nil || !strings.Contains(out, "http-canary") {
			t.Errorf("weft get routes: %v\n%s", err, out)
		}
	}
	m.remove("conflict.yaml")

	// The route removed: everything goes to http's own endpoint.
	m.remove("route.yaml")
	eventually(t, 15*time.Second, "the route gone", func() error {
		if code, backend, err := routedGet(t.Context(), c.http, "/", "X-User", "alice"); err != nil || backend != "server-0" {
			return fmt.Errorf("%d from %q: %v", code, backend, err)
		}
		return nil
	})
}

const filterRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: http-filters, namespace: e2e}
spec:
  parentRefs: [{group: "", kind: Service, name: http, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {hostname: shop.example, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}
  - matches: [{path: {type: PathPrefix, value: /api}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}
    - type: ResponseHeaderModifier
      responseHeaderModifier: {set: [{name: X-Served-By, value: weft}]}
    backendRefs: [{name: http, port: 80}]
`

// TestRouteFilters: a redirect answered by the proxy, and a rewrite and
// a response header modifier on the way to the backend.
func TestRouteFilters(t *testing.T) {
	f := serverSide(t)
	f.m.write("filters.yaml", filterRoute)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	eventually(t, 15*time.Second, "the redirect in force", func() error {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/old/a", f.c.http))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasSuffix(resp.Header.Get("Location"), "//shop.example/new/a") {
			return fmt.Errorf("%d to %q", resp.StatusCode, resp.Header.Get("Location"))
		}
		return nil
	})
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/api/products", f.c.http))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echo
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatal(err)
	}
	if e.Path != "/v1/products" || resp.Header.Get("X-Served-By") != "weft" {
		t.Errorf("the backend saw path %q; answer header X-Served-By %q", e.Path, resp.Header.Get("X-Served-By"))
	}
}
