package proxy_test

import (
	"io"
	"net/http"
	"strings"
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
