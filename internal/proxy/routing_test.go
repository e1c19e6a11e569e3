package proxy_test

import (
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
)

// routedMesh is a client whose service demo/api has routes to backends
// demo/api-v1 and demo/api-v2, each served by one workload.
type routedMesh struct {
	t      *testing.T
	client *clientSide
	states map[model.Ref]*model.ServiceState
}

func newRoutedMesh(t *testing.T, slowV2 time.Duration) *routedMesh {
	t.Helper()
	v1App := serveHTTP(t, echoApp("v1"))
	v2App := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(slowV2)
		w.Header().Set("X-Backend", "v2")
		w.Header().Set("X-Canary-Seen", r.Header.Get("X-Canary"))
	}))
	v1 := newServer(t, "api-v1-0", model.WorkloadPort{Port: v1App, Protocol: model.ProtocolHTTP1})
	v2 := newServer(t, "api-v2-0", model.WorkloadPort{Port: v2App, Protocol: model.ProtocolHTTP1})
	m := &routedMesh{t: t, states: map[model.Ref]*model.ServiceState{}}
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	for name, s := range map[string]*serverSide{"api-v1": v1, "api-v2": v2} {
		svc := &model.Service{Ref: model.Ref{Namespace: "demo", Name: name}, Ports: []model.ServicePort{port}}
		app := s.wl.Ports[0].Port
		m.states[svc.Ref] = &model.ServiceState{Service: svc, Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: app})}}
	}
	m.client = newClient(t, proxy.Options{}, service(port), []uint32{80})
	return m
}

// route applies rules to demo/api.
func (m *routedMesh) route(rules ...model.TableRule) {
	m.t.Helper()
	m.client.version++
	cfg := &model.ProxyConfig{Version: m.client.version, Workload: m.client.wl, Services: map[model.Ref]*model.ServiceState{}}
	for r, st := range m.states {
		cfg.Services[r] = st
	}
	cfg.Services[apiRef] = &model.ServiceState{Service: service(model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}), Routes: &model.RouteTable{Rules: rules}}
	if err := m.client.proxy.Apply(cfg); err != nil {
		m.t.Fatalf("apply routes: %v", err)
	}
}

func (m *routedMesh) get(path string, header ...string) (*http.Response, string) {
	m.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+m.client.addr(80)+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := h1Client().Do(req)
	if err != nil {
		m.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func backends(split ...any) []model.RouteBackend {
	var out []model.RouteBackend
	for i := 0; i+1 < len(split); i += 2 {
		out = append(out, model.RouteBackend{Service: split[i].(string), Weight: uint32(split[i+1].(int))})
	}
	return out
}

func TestWeightedSplit(t *testing.T) {
	m := newRoutedMesh(t, 0)
	m.route(model.TableRule{Route: "TrafficSplit demo/split", Rule: model.RouteRule{Backends: backends("api-v1", 80, "api-v2", 20)}})
	// /config shows the split in force, so an operator can see it.
	want := []proxy.RouteDump{{Route: "TrafficSplit demo/split", Backends: []proxy.BackendDump{{Service: "api-v1", Weight: 80}, {Service: "api-v2", Weight: 20}}}}
	for _, sd := range m.client.proxy.ConfigDump().(proxy.Dump).Services {
		if sd.Ref == apiRef.String() && !reflect.DeepEqual(sd.Routes, want) {
			t.Errorf("config dump of %s: routes %+v, want %+v", sd.Ref, sd.Routes, want)
		}
	}
	const n = 1000
	v2 := 0
	for range n {
		resp, _ := m.get("/")
		if resp.Header.Get("X-Backend") == "v2" {
			v2++
		}
	}
	// 20% of 1000 has a standard deviation of about 13; 5 of them is far
	// outside chance.
	if v2 < 135 || v2 > 265 {
		t.Fatalf("%d of %d requests went to v2, want about 200", v2, n)
	}
}

func TestRouteMatchesAndFailures(t *testing.T) {
	m := newRoutedMesh(t, 300*time.Millisecond)
	m.route(
		model.TableRule{Route: "HTTPRoute demo/canary", Match: model.RouteMatch{Headers: []model.ValueMatch{{Name: "x-user", Value: "alice"}}},
			Rule: model.RouteRule{Backends: backends("api-v2", 1), RequestHeaders: model.HeaderModifier{Set: map[string]string{"X-Canary": "yes"}}}},
		model.TableRule{Route: "HTTPRoute demo/slow", Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/slow"}},
			Rule: model.RouteRule{Backends: backends("api-v2", 1), Timeout: 100 * time.Millisecond}},
		model.TableRule{Route: "HTTPRoute demo/gone", Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/gone"}},
			Rule: model.RouteRule{Backends: backends("api-v9", 1)}},
		model.TableRule{Route: "HTTPRoute demo/main", Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/products"}},
			Rule: model.RouteRule{Backends: backends("api-v1", 1)}},
	)
	tests := []struct {
		desc        string
		path        string
		header      []string
		wantCode    int
		wantBackend string
		wantBody    string
	}{
		{"header route to the canary, with the header it sets", "/products", []string{"X-User", "alice"}, 200, "v2", ""},
		{"path route", "/products/7", nil, 200, "v1", ""},
		{"no rule matches", "/other", nil, 404, "", "no route of service demo/api matches GET /other"},
		{"backend that does not exist", "/gone", nil, 500, "", "backend service demo/api-v9 of HTTPRoute demo/gone does not exist"},
		{"route timeout", "/slow", nil, 504, "", "request timeout (100ms) passed"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			resp, body := m.get(tc.path, tc.header...)
			if resp.StatusCode != tc.wantCode || resp.Header.Get("X-Backend") != tc.wantBackend || !strings.Contains(body, tc.wantBody) {
				t.Fatalf("got %d from %q: %q; want %d from %q with %q", resp.StatusCode, resp.Header.Get("X-Backend"), body, tc.wantCode, tc.wantBackend, tc.wantBody)
			}
			if tc.wantBackend == "v2" && tc.header != nil && resp.Header.Get("X-Canary-Seen") != "yes" {
				t.Errorf("the request header modifier did not reach the backend")
			}
		})
	}
}

// shadowedMesh is a client whose routes may send to demo/api-v1, served
// by mainApp, and mirror to demo/shadow, served by shadowApp under
// shadowTraffic (nil: none).
func shadowedMesh(t *testing.T, mainApp, shadowApp uint32, shadowTraffic *model.TrafficPolicy) *routedMesh {
	t.Helper()
	main := newServer(t, "api-v1-0", model.WorkloadPort{Port: mainApp, Protocol: model.ProtocolHTTP1})
	shadow := newServer(t, "shadow-0", model.WorkloadPort{Port: shadowApp, Protocol: model.ProtocolHTTP1})
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	m := &routedMesh{t: t, states: map[model.Ref]*model.ServiceState{}}
	for name, s := range map[string]*serverSide{"api-v1": main, "shadow": shadow} {
		svc := &model.Service{Ref: model.Ref{Namespace: "demo", Name: name}, Ports: []model.ServicePort{port}}
		m.states[svc.Ref] = &model.ServiceState{Service: svc, Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: s.wl.Ports[0].Port})}}
	}
	m.states[model.Ref{Namespace: "demo", Name: "shadow"}].Traffic = shadowTraffic
	m.client = newClient(t, proxy.Options{}, service(port), []uint32{80})
	return m
}

func TestRouteFilters(t *testing.T) {
	var mirrored atomic.Int64
	pathApp := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Set("X-Host", r.Host)
		if r.URL.Query().Get("slow") != "" {
			time.Sleep(300 * time.Millisecond)
		}
	}))
	shadowApp := serveHTTP(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { mirrored.Add(1) }))
	m := shadowedMesh(t, pathApp, shadowApp, nil)
	prefix := func(p string) model.RouteMatch {
		return model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: p}}
	}
	m.route(
		model.TableRule{Route: "HTTPRoute demo/moved", Match: prefix("/old"), Rule: model.RouteRule{Redirect: &model.Redirect{
			Scheme: "https", Hostname: "shop.example", StatusCode: 301, Path: model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/new"}}}},
		model.TableRule{Route: "HTTPRoute demo/api", Match: prefix("/api"), Rule: model.RouteRule{Backends: backends("api-v1", 1),
			Rewrite:         &model.Rewrite{Hostname: "internal", Path: model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/v1"}},
			ResponseHeaders: model.HeaderModifier{Set: map[string]string{"X-Served-By": "weft"}},
			Mirror:          &model.Mirror{Service: "shadow", Percent: 100},
			BackendTimeout:  100 * time.Millisecond}},
	)
	client := &http.Client{Transport: h1Client().Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := client.Get("http://" + m.client.addr(80) + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if resp := get("/old/a?x=1"); resp.StatusCode != 301 || resp.Header.Get("Location") != "https://shop.example/new/a?x=1" {
		t.Errorf("redirect: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp := get("/api/products")
	if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "/v1/products" || resp.Header.Get("X-Host") != "internal" || resp.Header.Get("X-Served-By") != "weft" {
		t.Errorf("rewrite and response headers: %d path %q host %q served-by %q", resp.StatusCode, resp.Header.Get("X-Path"), resp.Header.Get("X-Host"), resp.Header.Get("X-Served-By"))
	}
	deadline := time.Now().Add(10 * time.Second)
	for mirrored.Load() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if mirrored.Load() < 1 {
		t.Error("the request was not mirrored")
	}
	if resp := get("/api/x?slow=1"); resp.StatusCode != http.StatusGatewayTimeout {
		t.Errorf("backend timeout: %d, want 504", resp.StatusCode)
	}
}

// A mirror service's circuit breaker bounds the copies sent to it: with
// one request in flight allowed, and that one stuck, every other copy is
// dropped and counted, and the requests themselves are not held up.
func TestMirrorRespectsItsCircuitBreaker(t *testing.T) {
	release := make(chan struct{})
	var mirrored atomic.Int64
	mainApp := serveHTTP(t, echoApp("v1"))
	shadowApp := serveHTTP(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		mirrored.Add(1)
		<-release
	}))
	defer close(release)
	m := shadowedMesh(t, mainApp, shadowApp, &model.TrafficPolicy{Breaker: &model.CircuitBreakerPolicy{
		Ref: model.Ref{Namespace: "demo", Name: "shadow-breaker"}, Service: "shadow", MaxRequests: 1}})
	m.route(model.TableRule{Route: "HTTPRoute demo/api", Rule: model.RouteRule{Backends: backends("api-v1", 1),
		Mirror: &model.Mirror{Service: "shadow", Percent: 100}}})
	if resp, _ := m.get("/a"); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	waitFor(t, "the first copy at the shadow", func() bool { return mirrored.Load() == 1 })
	for i := range 4 {
		if resp, _ := m.get("/b"); resp.StatusCode != 200 {
			t.Fatalf("request %d while the mirror is full: %d", i, resp.StatusCode)
		}
	}
	series := `weft_outbound_circuit_open_total{reason="mirror",service="demo/shadow"}`
	waitFor(t, "four copies dropped", func() bool { return clientMetric(t, m.client, series) == 4 })
	if n := mirrored.Load(); n != 1 {
		t.Fatalf("the shadow got %d copies with one place, and it taken", n)
	}
}
