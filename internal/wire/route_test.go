package wire

import (
	"strings"
	"testing"
	"time"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

func validRoutes() *model.RouteTable {
	return &model.RouteTable{Rules: []model.TableRule{
		{Route: "HTTPRoute demo/canary", Port: 80,
			Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/products"}, Method: "GET",
				Headers: []model.ValueMatch{{Name: "x-user", Value: "alice"}}, Query: []model.ValueMatch{{Name: "v", Value: "[0-9]+", Regex: true}}},
			Rule: model.RouteRule{Backends: []model.RouteBackend{{Service: "catalog-v2", Port: 80, Weight: 1}}, Timeout: 1500 * time.Millisecond,
				RequestHeaders: model.HeaderModifier{Set: map[string]string{"x-canary": "1"}, Remove: []string{"x-debug"}}}},
		{Route: "TrafficSplit demo/split", Rule: model.RouteRule{Backends: []model.RouteBackend{{Service: "catalog-v1", Weight: 90}, {Service: "catalog-v2", Weight: 10}}}},
		{Route: "HTTPRoute demo/moved", Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/old"}},
			Rule: model.RouteRule{Redirect: &model.Redirect{Scheme: "https", Hostname: "shop.example", Port: 8443, StatusCode: 301,
				Path: model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/new"}}}},
		{Route: "HTTPRoute demo/v2", Match: model.RouteMatch{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/v2"}},
			Rule: model.RouteRule{Backends: []model.RouteBackend{{Service: "catalog", Weight: 1}}, Timeout: 2 * time.Second, BackendTimeout: time.Second,
				Rewrite:         &model.Rewrite{Hostname: "catalog", Path: model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/"}},
				Mirror:          &model.Mirror{Service: "catalog-shadow", Percent: 12.5},
				ResponseHeaders: model.HeaderModifier{Add: map[string]string{"x-served-by": "weft"}}}},
	}}
}

func TestRoutesRoundTrip(t *testing.T) {
	for _, tbl := range []*model.RouteTable{nil, validRoutes()} {
		got, err := RoutesFromProto(RoutesToProto(tbl))
		if err != nil {
			t.Fatalf("RoutesFromProto: %v", err)
		}
		if !got.Equal(tbl) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, tbl)
		}
	}
	// Through a full update and a delta that leaves them alone.
	st := validState()
	st.Routes = validRoutes()
	full, err := ApplyUpdate(nil, FullUpdate(st.Service.Ref, st), 1)
	if err != nil || !full.Routes.Equal(st.Routes) {
		t.Fatalf("full update: %v, routes %+v", err, full.Routes)
	}
	delta, err := ApplyUpdate(full, &meshv1.ServiceUpdate{Ref: RefToProto(st.Service.Ref), Exists: true, Removed: []string{"none"}}, 2)
	if err != nil || delta.Routes != full.Routes {
		t.Fatalf("a delta without routes changed them: %v", err)
	}
}

func TestRoutesFromProtoRefuses(t *testing.T) {
	rule := func(r *meshv1.RouteRule) *meshv1.RoutesUpdate {
		return &meshv1.RoutesUpdate{Table: &meshv1.RouteTable{Rules: []*meshv1.RouteRule{r}}}
	}
	backend := []*meshv1.RouteBackend{{Service: "b", Weight: 1}}
	tests := []struct {
		desc    string
		update  *meshv1.RoutesUpdate
		wantErr string
	}{
		{"no update", nil, "routes: must be set"},
		{"nil rule", rule(nil), "routes.rules[0]: must be set"},
		{"no route name", rule(&meshv1.RouteRule{Backends: backend}), "rules[0].route"},
		{"no backends", rule(&meshv1.RouteRule{Route: "r"}), "rules[0].backendRefs"},
		{"bad regex", rule(&meshv1.RouteRule{Route: "r", Backends: backend, Match: &meshv1.RouteMatch{Headers: []*meshv1.ValueMatch{{Name: "x", Value: "(", Regex: true}}}}), "headers[0].value"},
		{"huge timeout", rule(&meshv1.RouteRule{Route: "r", Backends: backend, TimeoutMs: 1 << 62}), "timeout_ms"},
		{"bad backend name", rule(&meshv1.RouteRule{Route: "r", Backends: []*meshv1.RouteBackend{{Service: "B!", Weight: 1}}}), "backendRefs[0].name"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got, err := RoutesFromProto(tc.update)
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("RoutesFromProto = %+v, %v; want error with %q", got, err, tc.wantErr)
			}
		})
	}
}
