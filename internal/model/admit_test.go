package model

import (
	"strings"
	"testing"
)

func TestRouteAdmission(t *testing.T) {
	catalog := Ref{"demo", "catalog"}
	services := []*Service{
		svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80}),
		svc("catalog-v1", map[string]string{"app": "catalog", "version": "v1"}, ServicePort{Port: 80}),
		svc("catalog-v2", map[string]string{"app": "catalog", "version": "v2"}, ServicePort{Port: 80}),
	}
	to := func(backends ...string) []RouteBackend {
		var out []RouteBackend
		for _, b := range backends {
			out = append(out, RouteBackend{Service: b, Weight: 1})
		}
		return out
	}
	httpRoute := func(name string, port uint32, rules ...RouteRule) *Route {
		return &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", name}, Parents: []RouteParent{{Service: "catalog", Port: port}}, Rules: rules}
	}
	split := func(name string, groups ...string) *Route {
		return &Route{Kind: KindTrafficSplit, Ref: Ref{"demo", name}, Parents: []RouteParent{{Service: "catalog"}},
			Rules: []RouteRule{{Backends: to("catalog-v1", "catalog-v2"), Groups: groups}}}
	}
	beta := RouteMatch{Headers: []ValueMatch{{Name: "x-user", Value: "beta"}}}
	group := &HTTPRouteGroup{Ref: Ref{"demo", "beta"}, Matches: []HTTPRouteMatch{{Name: "beta", Methods: []string{"GET", "HEAD"},
		Headers: map[string]string{"x-user": "beta.*"}}}}

	tests := []struct {
		desc string
		// steps are applied in order; the last one's table and rejections
		// are checked.
		steps        []Changes
		wantTable    string
		wantRejected map[string]string // route name -> field in the error
	}{
		{
			desc:         "an unknown backend is rejected and nothing is in force",
			steps:        []Changes{{PutPolicies: []Policy{httpRoute("r", 0, RouteRule{Backends: to("catalog-v3")})}}},
			wantTable:    "<none>",
			wantRejected: map[string]string{"r": "spec.rules[0].backendRefs[0].name: service demo/catalog-v3 does not exist"},
		},
		{
			desc: "an edit naming an unknown backend keeps the previous version in force",
			steps: []Changes{
				{PutPolicies: []Policy{httpRoute("r", 0, RouteRule{Matches: []RouteMatch{beta}, Backends: to("catalog-v2")}, RouteRule{Backends: to("catalog-v1")})}},
				{PutPolicies: []Policy{httpRoute("r", 0, RouteRule{Backends: to("catalog-v1", "catalog-v9")})}},
			},
			wantTable:    "HTTPRoute demo/r * x-user=beta; HTTPRoute demo/r *",
			wantRejected: map[string]string{"r": "spec.rules[0].backendRefs[1].name"},
		},
		{
			desc: "the missing backend appearing admits the route",
			steps: []Changes{
				{PutPolicies: []Policy{httpRoute("r", 0, RouteRule{Backends: to("catalog-v4")})}},
				{PutServices: []*Service{svc("catalog-v4", map[string]string{"app": "catalog", "version": "v4"}, ServicePort{Port: 80})}},
			},
			wantTable: "HTTPRoute demo/r *",
		},
		{
			desc:         "an unknown mirror is rejected",
			steps:        []Changes{{PutPolicies: []Policy{httpRoute("r", 0, RouteRule{Backends: to("catalog-v1"), Mirror: &Mirror{Service: "shadow", Percent: 10}})}}},
			wantTable:    "<none>",
			wantRejected: map[string]string{"r": "spec.rules[0].filters.requestMirror.backendRef.name"},
		},
		{
			desc: "a match another route has in force is rejected, whatever the names",
			steps: []Changes{
				{PutPolicies: []Policy{httpRoute("b", 0, RouteRule{Matches: []RouteMatch{beta}, Backends: to("catalog-v2")})}},
				{PutPolicies: []Policy{httpRoute("a", 80, RouteRule{Matches: []RouteMatch{{Method: "GET"}, beta}, Backends: to("catalog-v1")})}},
			},
			wantTable:    "HTTPRoute demo/b * x-user=beta",
			wantRejected: map[string]string{"a": "spec.rules[0].matches[1]: the same match as HTTPRoute demo/b spec.rules[0].matches[0] on service catalog"},
		},
		{
			desc: "new routes in conflict: the first by name wins",
			steps: []Changes{{PutPolicies: []Policy{
				httpRoute("b", 0, RouteRule{Backends: to("catalog-v2")}),
				httpRoute("a", 0, RouteRule{Backends: to("catalog-v1")}),
			}}},
			wantTable:    "HTTPRoute demo/a *",
			wantRejected: map[string]string{"b": "spec.rules[0].matches: the same match as HTTPRoute demo/a spec.rules[0].matches"},
		},
		{
			desc: "the same match on different ports does not conflict",
			steps: []Changes{{PutServices: []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80}, ServicePort{Port: 81})},
				PutPolicies: []Policy{httpRoute("a", 80, RouteRule{Backends: to("catalog-v1")}), httpRoute("b", 81, RouteRule{Backends: to("catalog-v2")})}}},
			wantTable: "HTTPRoute demo/a *; HTTPRoute demo/b *",
		},
		{
			desc: "a route freeing a match lets another take it",
			steps: []Changes{
				{PutPolicies: []Policy{httpRoute("a", 0, RouteRule{Matches: []RouteMatch{beta}, Backends: to("catalog-v1")})}},
				{PutPolicies: []Policy{httpRoute("b", 0, RouteRule{Matches: []RouteMatch{beta}, Backends: to("catalog-v2")})}},
				{PutPolicies: []Policy{httpRoute("a", 0, RouteRule{Matches: []RouteMatch{{Method: "POST"}}, Backends: to("catalog-v1")})}},
			},
			wantTable: "HTTPRoute demo/a * POST; HTTPRoute demo/b * x-user=beta",
		},
		{
			desc:  "a TrafficSplit's HTTPRouteGroup matches split what they match; the rest goes to the root service",
			steps: []Changes{{PutPolicies: []Policy{group, split("s", "beta")}}},
			// One route match per method of the group.
			wantTable: "TrafficSplit demo/s * GET x-user=beta.*; TrafficSplit demo/s * HEAD x-user=beta.*; Service demo/catalog *",
		},
		{
			desc:         "a TrafficSplit naming an unknown HTTPRouteGroup is rejected, by its own field",
			steps:        []Changes{{PutPolicies: []Policy{split("s", "nope")}}},
			wantTable:    "<none>",
			wantRejected: map[string]string{"s": "spec.matches[0]: HTTPRouteGroup demo/nope does not exist"},
		},
		{
			desc: "an HTTPRouteGroup change reaches the split",
			steps: []Changes{
				{PutPolicies: []Policy{group, split("s", "beta")}},
				{PutPolicies: []Policy{&HTTPRouteGroup{Ref: Ref{"demo", "beta"}, Matches: []HTTPRouteMatch{{Name: "all", Methods: []string{"*"}}}}}},
			},
			wantTable: "TrafficSplit demo/s *",
		},
		{
			desc:         "two TrafficSplits of one root service conflict",
			steps:        []Changes{{PutPolicies: []Policy{split("s1"), split("s2")}}},
			wantTable:    "TrafficSplit demo/s1 *",
			wantRejected: map[string]string{"s2": "spec.matches: the same match as TrafficSplit demo/s1 spec.matches"},
		},
		{
			desc:      "a TrafficSplit and an HTTPRoute do not conflict: the HTTPRoute wins as a whole",
			steps:     []Changes{{PutPolicies: []Policy{split("s"), httpRoute("r", 0, RouteRule{Backends: to("catalog-v2")})}}},
			wantTable: "HTTPRoute demo/r *",
		},
		{
			desc: "deleting the route in force lets the rejected one in",
			steps: []Changes{
				{PutPolicies: []Policy{httpRoute("a", 0, RouteRule{Backends: to("catalog-v1")}), httpRoute("b", 0, RouteRule{Backends: to("catalog-v2")})}},
				{DeletePolicies: []PolicyKey{{KindHTTPRoute, Ref{"demo", "a"}}}},
			},
			wantTable: "HTTPRoute demo/b *",
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := NewStore()
			if err := s.Apply("files", Changes{PutServices: services}); err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.steps {
				if err := s.Apply("files", c); err != nil {
					t.Fatal(err)
				}
			}
			snap := s.Snapshot()
			st, _ := snap.Service(catalog)
			if got := describeTable(st.Routes); got != tc.wantTable {
				t.Errorf("table\n got %s\nwant %s", got, tc.wantTable)
			}
			for k, err := range snap.RouteRejections() {
				want, ok := tc.wantRejected[k.Ref.Name]
				switch {
				case !ok:
					t.Errorf("%s rejected: %v", k, err)
				case !strings.Contains(err.Error(), want):
					t.Errorf("%s rejected with %q, want %q in it", k, err, want)
				}
			}
			for name := range tc.wantRejected {
				if !strings.Contains(describeRejections(snap), name) {
					t.Errorf("route %s is not rejected", name)
				}
			}
		})
	}
}

func describeRejections(snap *Snapshot) string {
	var out []string
	for k := range snap.RouteRejections() {
		out = append(out, k.Ref.Name)
	}
	return strings.Join(out, ",")
}

func TestRouteValidationRefusesDuplicateMatches(t *testing.T) {
	rule := func(ms ...RouteMatch) RouteRule {
		return RouteRule{Matches: ms, Backends: []RouteBackend{{Service: "b", Weight: 1}}}
	}
	h := func(pairs ...string) []ValueMatch {
		var out []ValueMatch
		for i := 0; i < len(pairs); i += 2 {
			out = append(out, ValueMatch{Name: pairs[i], Value: pairs[i+1]})
		}
		return out
	}
	tests := []struct {
		desc  string
		kind  string
		rules []RouteRule
		want  string // "" for valid
	}{
		{"distinct", KindHTTPRoute, []RouteRule{rule(RouteMatch{Method: "GET"}), rule(RouteMatch{Method: "POST"})}, ""},
		{"two rules without matches", KindHTTPRoute, []RouteRule{rule(), rule()}, "spec.rules[1].matches: the same match as spec.rules[0].matches"},
		{"header order does not matter", KindHTTPRoute, []RouteRule{rule(RouteMatch{Headers: h("a", "1", "b", "2")}), rule(RouteMatch{Headers: h("b", "2", "a", "1")})},
			"spec.rules[1].matches[0]: the same match as spec.rules[0].matches[0]"},
		{"within one rule", KindHTTPRoute, []RouteRule{rule(RouteMatch{Method: "GET"}, RouteMatch{Method: "GET"})}, "spec.rules[0].matches[1]"},
		{"a GRPCRoute names its own field", KindGRPCRoute, []RouteRule{rule(RouteMatch{Path: &PathMatch{Type: PathExact, Value: "/a.B/C"}}), rule(RouteMatch{Path: &PathMatch{Type: PathExact, Value: "/a.B/C"}})},
			"spec.rules[1].matches[0]: the same match"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := &Route{Kind: tc.kind, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}}, Rules: tc.rules}
			err := r.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
