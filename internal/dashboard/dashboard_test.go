package dashboard

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/source/files"
	"github.com/weftmesh/weft/internal/stats"
)

// fakeAdmin serves JSON documents by path (with the query, when a
// document's key has one) and records what it was asked.
type fakeAdmin struct {
	*httptest.Server
	mu   sync.Mutex
	docs map[string]any
	seen []string // "METHOD path?query"
}

func newFakeAdmin(t *testing.T, docs map[string]any) *fakeAdmin {
	t.Helper()
	a := &fakeAdmin{docs: docs}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Method+" "+r.URL.RequestURI())
		doc, ok := a.docs[r.URL.RequestURI()]
		if !ok {
			doc, ok = a.docs[r.URL.Path]
		}
		a.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeAdmin) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

func (a *fakeAdmin) set(path string, doc any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.docs[path] = doc
}

func newHandler(t *testing.T, admin string, interval time.Duration) *Handler {
	t.Helper()
	h, err := New(Options{Admin: admin, Interval: interval})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func get(t *testing.T, h http.Handler, target string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	req.Host = "127.0.0.1:20400"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestAssetsServedWithTheirTypes(t *testing.T) {
	h := newHandler(t, "127.0.0.1:1", 0)
	for _, c := range []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<script src="/assets/app.js"`},
		{"/assets/app.js", "text/javascript; charset=utf-8", "new EventSource('/events')"},
		{"/assets/app.css", "text/css; charset=utf-8", "#topology"},
		{"/assets/favicon.svg", "image/svg+xml", "<svg"},
	} {
		resp := get(t, h, c.path, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", c.path, resp.Status)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != c.contentType {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.contentType)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q, want nosniff", c.path, got)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q does not keep the page to its own origin", c.path, csp)
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		// A second load of an unchanged asset is a 304.
		again := get(t, h, c.path, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %s, want 304", c.path, again.Status)
		}
	}
	for _, p := range []string{"/assets/nothing.js", "/assets/", "/index.html.bak", "/nothing"} {
		if resp := get(t, h, p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %s, want 404", p, resp.Status)
		}
	}
}

// TestAssetsAreSelfContained keeps the UI offline: nothing it loads or
// links may come from another host.
func TestAssetsAreSelfContained(t *testing.T) {
	h := newHandler(t, "127.0.0.1:1", 0)
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for name, a := range h.assets {
		for _, m := range external.FindAllString(string(a.data), -1) {
			// The SVG namespace is a name, not something fetched.
			if m == "http://www.w3.org" {
				continue
			}
			t.Errorf("asset %s refers to another host: %s", name, m)
		}
	}
	index := string(h.assets["index.html"].data)
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(index, -1) {
		if !strings.HasPrefix(m[1], "/assets/") && !strings.HasPrefix(m[1], "#") {
			t.Errorf("index.html links %q, not an embedded asset", m[1])
		}
		if strings.HasPrefix(m[1], "/assets/") {
			if _, ok := h.assets[strings.TrimPrefix(m[1], "/assets/")]; !ok {
				t.Errorf("index.html links %q, which is not embedded", m[1])
			}
		}
	}
}

func TestAPIPassesReadsThrough(t *testing.T) {
	admin := newFakeAdmin(t, map[string]any{
		"/api/v1/stats/history?service=demo%2Fcatalog": map[string]any{"service": "demo/catalog", "points": []any{}},
	})
	h := newHandler(t, strings.TrimPrefix(admin.URL, "http://"), 0)

	resp := get(t, h, "/api/v1/stats/history?service=demo%2Fcatalog", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET history: %s %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	if !strings.Contains(string(body), `"service":"demo/catalog"`) {
		t.Errorf("GET history: body %s is not the admin API's", body)
	}
	// The admin API's own answer passes through, 404s included.
	if resp := get(t, h, "/api/v1/nothing", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/v1/nothing: %s, want the admin API's 404", resp.Status)
	}
	if got, want := admin.requests(), []string{"GET /api/v1/stats/history?service=demo%2Fcatalog", "GET /api/v1/nothing"}; !slices.Equal(got, want) {
		t.Errorf("the admin API was asked %q, want %q", got, want)
	}
}

func TestAPIRefusesWrites(t *testing.T) {
	admin := newFakeAdmin(t, map[string]any{})
	h := newHandler(t, strings.TrimPrefix(admin.URL, "http://"), 0)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		for _, path := range []string{"/api/v1/identity/tokens", "/api/v1/identity/rotate", "/api/v1/services"} {
			req := httptest.NewRequest(method, path, strings.NewReader(`{"step":"prepare"}`))
			req.Host = "127.0.0.1:20400"
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", method, path, rec.Code)
			}
			if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
				t.Errorf("%s %s: Allow %q, want GET, HEAD", method, path, allow)
			}
		}
	}
	// Only the admin API's /api/v1/ passes, not its other paths.
	if resp := get(t, h, "/api/live", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /api/live: %s, want 404", resp.Status)
	}
	if got := admin.requests(); len(got) != 0 {
		t.Errorf("the admin API was asked %q, want nothing", got)
	}
}

func TestAPIWithTheControlPlaneDown(t *testing.T) {
	admin := newFakeAdmin(t, map[string]any{})
	addr := strings.TrimPrefix(admin.URL, "http://")
	admin.Close()
	h := newHandler(t, addr, 0)
	resp := get(t, h, "/api/v1/status", nil)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), addr) {
		t.Errorf("GET /api/v1/status with the control plane down: %s %s, want 502 naming %s", resp.Status, body, addr)
	}
}

// TestLoopbackHostsOnly: a page of another site that resolves its own
// name to 127.0.0.1 (DNS rebinding) must not read the mesh.
func TestLoopbackHostsOnly(t *testing.T) {
	h := newHandler(t, "127.0.0.1:1", 0)
	for host, want := range map[string]int{
		"127.0.0.1:20400":         http.StatusOK,
		"localhost:20400":         http.StatusOK,
		"LOCALHOST":               http.StatusOK,
		"[::1]:20400":             http.StatusOK,
		"127.0.0.2":               http.StatusOK,
		"evil.example:20400":      http.StatusMisdirectedRequest,
		"localhost.evil.example":  http.StatusMisdirectedRequest,
		"192.168.1.10:20400":      http.StatusMisdirectedRequest,
		"[2001:db8::1]:20400":     http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:20400":  http.StatusMisdirectedRequest,
		"":                        http.StatusMisdirectedRequest,
		"weft.dashboard.internal": http.StatusMisdirectedRequest,
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.Host = host
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Host %q: %d, want %d", host, rec.Code, want)
		}
	}
}

func TestEventFrame(t *testing.T) {
	for _, c := range []struct {
		data, want string
	}{
		{`{"a":1}`, "id: 7\nevent: snapshot\ndata: {\"a\":1}\n\n"},
		// Each line its own data field, whatever ends the line: the
		// browser joins them with newlines again.
		{"one\ntwo\r\nthree\rfour", "id: 7\nevent: snapshot\ndata: one\ndata: two\ndata: three\ndata: four\n\n"},
		{"", "id: 7\nevent: snapshot\ndata: \n\n"},
	} {
		if got := string(eventFrame("snapshot", "7", []byte(c.data))); got != c.want {
			t.Errorf("eventFrame(%q) = %q, want %q", c.data, got, c.want)
		}
	}
}

// demoDocs are the admin API's documents for a mesh shaped like the demo,
// with stats for two of its edges.
func demoDocs() map[string]any {
	svc := func(name string, proto string, port uint32, workloads ...string) controlplane.Service {
		s := controlplane.Service{Name: name, Ports: []controlplane.Port{{Port: port, Protocol: proto}}, Endpoints: []controlplane.Endpoint{}}
		for _, w := range workloads {
			s.Endpoints = append(s.Endpoints, controlplane.Endpoint{Workload: w, Address: "127.0.0.1:1", Identity: "spiffe://weft.local/ns/demo/sa/x"})
		}
		return s
	}
	wl := func(name string, outbound ...string) controlplane.Workload {
		w := controlplane.Workload{Name: name, Address: "127.0.0.1", Source: "manifests"}
		for _, o := range outbound {
			w.Outbound = append(w.Outbound, controlplane.Outbound{Service: o, Port: 80})
		}
		return w
	}
	rate := 0.98
	yes := true
	return map[string]any{
		"/api/v1/status": controlplane.Status{Version: 3, Proxies: []controlplane.Proxy{{Workload: "demo/web-0"}, {Workload: "demo/catalog-v1-0"}},
			Manifests: &files.Status{Problems: []files.Problem{{File: "bad.yaml", Object: "service demo/broken", Message: "bad.yaml: port: 70000 is out of range"}}}},
		"/api/v1/services": []controlplane.Service{
			svc("demo/web", "http", 80, "demo/web-0"),
			svc("demo/catalog", "http", 80, "demo/catalog-v1-0", "demo/catalog-v2-0"),
			svc("demo/catalog-v1", "http", 80, "demo/catalog-v1-0"),
			svc("demo/catalog-v2", "http", 80, "demo/catalog-v2-0"),
			svc("demo/stock", "grpc", 9090, "demo/stock-0"),
			svc("demo/audit", "tcp", 7000, "demo/audit-0"),
		},
		"/api/v1/workloads": []controlplane.Workload{
			wl("demo/web-0", "demo/catalog", "demo/audit"),
			wl("demo/catalog-v1-0", "demo/stock"),
			wl("demo/catalog-v2-0", "demo/stock"),
			wl("demo/stock-0"),
			wl("demo/audit-0"),
			wl("demo/loadgen-0", "demo/web"),
		},
		"/api/v1/routes":   []controlplane.Route{},
		"/api/v1/policies": []controlplane.Policy{},
		"/api/v1/stats?window=30s": stats.Summary{
			Window: "30s", Interval: "5s", To: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Seconds: 30,
			Services: []stats.ServiceStats{{Name: "demo/web", Signals: stats.Signals{Requests: 150, RPS: 5}}},
			Edges: []stats.EdgeStats{
				{Source: "demo/loadgen-0", Destination: "demo/web", MTLS: &yes,
					Signals: stats.Signals{Requests: 150, Successes: 147, SuccessRate: &rate, RPS: 5, LatencyMs: &stats.Latency{P50: 3, P95: 9, P99: 12}}},
				// A route's backend: no outbound list names it.
				{Source: "demo/web-0", Destination: "demo/catalog-v2", MTLS: &yes, Signals: stats.Signals{Requests: 30, RPS: 1}},
				// A caller the mesh does not know: left out.
				{Source: "demo/ghost-0", Destination: "demo/web", Signals: stats.Signals{Requests: 3, RPS: 0.1}},
			},
		},
	}
}

// readEvent reads one server-sent event: its fields, data lines joined.
func readEvent(t *testing.T, r *bufio.Reader) map[string]string {
	t.Helper()
	ev := map[string]string{}
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the event stream: %v (event so far %v)", err, ev)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(ev) == 0 {
				continue
			}
			return ev
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		if _, ok := ev[k]; ok && k == "data" {
			ev[k] += "\n" + v
		} else {
			ev[k] = v
		}
	}
}

func TestEventsStreamSnapshots(t *testing.T) {
	admin := newFakeAdmin(t, demoDocs())
	h := newHandler(t, strings.TrimPrefix(admin.URL, "http://"), 50*time.Millisecond)
	srv := httptest.NewServer(h)
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q, want text/event-stream", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	r := bufio.NewReader(resp.Body)
	if ev := readEvent(t, r); ev["retry"] != "50" {
		t.Errorf("first event %v, want the retry interval 50 (ms)", ev)
	}
	ev := readEvent(t, r)
	if ev["event"] != "snapshot" || ev["id"] != "1" {
		t.Fatalf("event %v, want snapshot 1", ev)
	}
	var snap Snapshot
	if err := json.Unmarshal([]byte(ev["data"]), &snap); err != nil {
		t.Fatalf("snapshot data: %v\n%s", err, ev["data"])
	}
	if len(snap.Errors) != 0 {
		t.Errorf("snapshot errors: %v", snap.Errors)
	}
	if !snap.Stats.Available || snap.Stats.Window != "30s" {
		t.Errorf("snapshot stats %+v, want available over 30s", snap.Stats)
	}
	if snap.Version != 3 || snap.Proxies != 2 {
		t.Errorf("snapshot version %d, %d proxies; want 3, 2", snap.Version, snap.Proxies)
	}
	if len(snap.Topology.Nodes) != 7 || len(snap.Topology.Edges) != 6 {
		t.Errorf("topology: %d nodes, %d edges; want 7, 6", len(snap.Topology.Nodes), len(snap.Topology.Edges))
	}
	if len(snap.Problems) != 1 || snap.Problems[0].File != "bad.yaml" {
		t.Errorf("problems %+v, want the manifest's one", snap.Problems)
	}

	// The next snapshot comes an interval later and sees the change.
	admin.set("/api/v1/status", controlplane.Status{Version: 4, Proxies: []controlplane.Proxy{}})
	deadline := time.Now().Add(5 * time.Second)
	for {
		ev := readEvent(t, r)
		if err := json.Unmarshal([]byte(ev["data"]), &snap); err != nil {
			t.Fatal(err)
		}
		if snap.Version == 4 {
			if ev["id"] == "1" {
				t.Errorf("a later event has id 1")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no snapshot of the new version within 5s")
		}
	}
	// The stream ends with the client, and so does its handler: Close
	// waits for it.
	cancel()
	closed := make(chan struct{})
	go func() { srv.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the event stream's handler did not end with its client")
	}
}

func TestSnapshotWithoutStats(t *testing.T) {
	docs := demoDocs()
	delete(docs, "/api/v1/stats?window=30s")
	admin := newFakeAdmin(t, docs)
	h := newHandler(t, strings.TrimPrefix(admin.URL, "http://"), 0)
	snap := h.collect(t.Context())
	// An older control plane without stats is no error of the mesh's: the
	// UI says there is no traffic data.
	if len(snap.Errors) != 0 {
		t.Errorf("errors %v, want none", snap.Errors)
	}
	if snap.Stats.Available || !strings.Contains(snap.Stats.Error, "404") {
		t.Errorf("stats %+v, want unavailable with the 404", snap.Stats)
	}
	for _, e := range snap.Topology.Edges {
		if e.Stats != nil {
			t.Errorf("edge %s has stats %+v without any from the control plane", e.ID, e.Stats)
		}
	}

	// Stats served, but fewer than two samples yet: no rates to show.
	admin.set("/api/v1/stats?window=30s", stats.Summary{Window: "30s", Interval: "5s", Proxies: stats.Scrapes{Targets: 6, Scraped: 6}})
	snap = h.collect(t.Context())
	if snap.Stats.Available || snap.Stats.Error != "" || snap.Stats.Interval != "5s" {
		t.Errorf("stats %+v, want unavailable, no error, interval 5s", snap.Stats)
	}
	if len(snap.Topology.Edges) != 5 || snap.Topology.Edges[0].Stats != nil {
		t.Errorf("edges %+v, want the 5 declared ones without stats", snap.Topology.Edges)
	}
}

func TestSnapshotWithTheControlPlaneDown(t *testing.T) {
	admin := newFakeAdmin(t, map[string]any{})
	addr := strings.TrimPrefix(admin.URL, "http://")
	admin.Close()
	h := newHandler(t, addr, 0)
	snap := h.collect(t.Context())
	if len(snap.Errors) != 5 {
		t.Errorf("errors %q, want one per document read", snap.Errors)
	}
	data, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	// Empty lists, not nulls, so the UI needs no checks.
	for _, field := range []string{`"nodes":[]`, `"edges":[]`, `"problems":[]`, `"services":[]`, `"routes":[]`, `"policies":[]`, `"routeStats":[]`} {
		if !strings.Contains(string(data), field) {
			t.Errorf("snapshot lacks %s: %s", field, data)
		}
	}
}

func TestNewRefusesNoAdmin(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without an admin address: no error")
	}
}
