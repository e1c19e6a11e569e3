package proxy

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// benchRoutes is a proxy state whose outbound port 10080 leads to
// demo/api, whose routes send each request to demo/api-v1 or demo/api-v2
// (90/10) by the first of rules matching rules: one path prefix per
// rule, then a canary header, a regular expression on a header, and a
// catch-all.
func benchRoutes(b *testing.B, rules int) *route {
	b.Helper()
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	cfg := &model.ProxyConfig{
		Workload: &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "web-0"},
			Outbound: []model.Outbound{{Service: model.Ref{Namespace: "demo", Name: "api"}, Port: 80, LocalPort: 10080}}},
		Services: map[model.Ref]*model.ServiceState{},
	}
	backends := []model.RouteBackend{{Service: "api-v1", Weight: 90}, {Service: "api-v2", Weight: 10}}
	var table []model.TableRule
	for i := range rules {
		table = append(table, model.TableRule{Route: "HTTPRoute demo/api", Match: model.RouteMatch{
			Path: &model.PathMatch{Type: model.PathPrefix, Value: fmt.Sprintf("/v%d/", i)}, Method: http.MethodGet},
			Rule: model.RouteRule{Backends: backends}})
	}
	table = append(table,
		model.TableRule{Route: "HTTPRoute demo/canary", Match: model.RouteMatch{Headers: []model.ValueMatch{{Name: "X-Canary", Value: "yes"}}},
			Rule: model.RouteRule{Backends: backends[1:]}},
		model.TableRule{Route: "HTTPRoute demo/agents", Match: model.RouteMatch{Headers: []model.ValueMatch{{Name: "User-Agent", Value: "bot-[0-9]+", Regex: true}}},
			Rule: model.RouteRule{Backends: backends[:1]}},
		model.TableRule{Route: "HTTPRoute demo/rest", Rule: model.RouteRule{Backends: backends}})
	cfg.Services[model.Ref{Namespace: "demo", Name: "api"}] = &model.ServiceState{
		Service: &model.Service{Ref: model.Ref{Namespace: "demo", Name: "api"}, Ports: []model.ServicePort{port}},
		Routes:  &model.RouteTable{Rules: table}}
	for _, name := range []string{"api-v1", "api-v2"} {
		ref := model.Ref{Namespace: "demo", Name: name}
		var eps []*model.Endpoint
		for i := range 3 {
			eps = append(eps, &model.Endpoint{ID: fmt.Sprintf("demo/%s-%d", name, i), Address: fmt.Sprintf("198.18.0.%d", i+1), ProxyPort: 15006,
				TargetPorts: map[uint32]uint32{80: 8080}})
		}
		cfg.Services[ref] = &model.ServiceState{Service: &model.Service{Ref: ref, Ports: []model.ServicePort{port}}, Endpoints: eps}
	}
	p := New(Options{Logger: slog.New(slog.DiscardHandler)})
	p.mu.Lock()
	st, err := p.buildState(cfg)
	p.mu.Unlock()
	if err != nil {
		b.Fatal(err)
	}
	return st.routes[10080]
}

// BenchmarkRouteMatch is the per-request route decision of an outbound
// port (routeTable match and weighted backend pick) for requests that
// match the table's first rule, its last path rule, an exact header, a
// header's regular expression, and nothing but the catch-all.
func BenchmarkRouteMatch(b *testing.B) {
	const rules = 10
	rt := benchRoutes(b, rules)
	for _, tc := range []struct {
		name, path, header, value string
	}{
		{"first-rule", "/v0/orders/42", "", ""},
		{"last-path-rule", fmt.Sprintf("/v%d/orders/42", rules-1), "", ""},
		{"exact-header", "/orders/42", "X-Canary", "yes"},
		{"regex-header", "/orders/42", "User-Agent", "bot-17"},
		{"catch-all", "/orders/42", "", ""},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "http://api.demo"+tc.path, nil)
			if tc.header != "" {
				r.Header.Set(tc.header, tc.value)
			}
			b.ReportAllocs()
			for b.Loop() {
				target, rule, _, err := rt.forRequest(r)
				if err != nil || target == nil || rule == nil {
					b.Fatalf("forRequest: %v, %v, %v", target, rule, err)
				}
			}
		})
	}
}
