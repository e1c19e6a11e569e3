package model

import (
	"fmt"
	"strings"
	"testing"
)

// describeAuthz renders an authorization compactly: "selected allow[...] deny[...]".
func describeAuthz(a *Authz) string {
	if a == nil {
		return "<none>"
	}
	var b strings.Builder
	if a.Selected {
		b.WriteString("selected ")
	}
	for _, list := range []struct {
		name   string
		grants []AuthzGrant
	}{{"allow", a.Allow}, {"deny", a.Deny}} {
		b.WriteString(list.name + "[")
		for i, g := range list.grants {
			if i > 0 {
				b.WriteString("; ")
			}
			r := g.Rule
			fmt.Fprintf(&b, "%s from=%v ports=%v methods=%v paths=%v", g.Policy, r.From, r.Ports, r.Methods, r.Paths)
		}
		b.WriteString("] ")
	}
	return strings.TrimSpace(b.String())
}

func TestAuthzResolution(t *testing.T) {
	web := Principal{Namespace: "demo", ServiceAccount: "web"}
	catalogWorkload := func() *Workload {
		w := wl("catalog-1", map[string]string{"app": "catalog"}, 14001, WorkloadPort{Port: 8080})
		w.ServiceAccount = "catalog"
		return w
	}
	base := Changes{
		PutServices:  []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80, TargetPort: 8080})},
		PutWorkloads: []*Workload{catalogWorkload()},
	}
	routes := []Policy{
		&HTTPRouteGroup{Ref: Ref{"demo", "catalog-routes"}, Matches: []HTTPRouteMatch{
			{Name: "read", Methods: []string{"GET"}, PathRegex: "/products.*"},
			{Name: "any", Methods: []string{"*"}},
		}},
		&TCPRoute{Ref: Ref{"demo", "db"}, Ports: []uint32{5432, 8080}},
	}
	tests := []struct {
		desc     string
		policies []Policy
		want     string
	}{
		{"no policy", nil, "<none>"},
		{"allow by service", []Policy{&AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "catalog"}, Action: AuthzAllow,
			Rules: []AuthzRule{{From: []Principal{web}}}}},
			"selected allow[AuthorizationPolicy demo/p from=[{demo web}] ports=[] methods=[] paths=[]] deny[]"},
		{"deny by service account", []Policy{&AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{ServiceAccount: "catalog"}, Action: AuthzDeny,
			Rules: []AuthzRule{{Methods: []string{"DELETE"}}}}},
			"allow[] deny[AuthorizationPolicy demo/p from=[] ports=[] methods=[DELETE] paths=[]]"},
		{"selector that does not match", []Policy{&AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Selector: map[string]string{"app": "web"}}, Action: AuthzAllow}}, "<none>"},
		{"a service that does not exist selects nothing", []Policy{&AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "nope"}, Action: AuthzAllow}}, "<none>"},
		{"traffic target with named HTTP matches and a TCP route", append([]Policy{&TrafficTarget{Ref: Ref{"demo", "tt"},
			Destination: Principal{"demo", "catalog"}, Sources: []Principal{web},
			Rules: []TrafficTargetRule{{Kind: KindHTTPRouteGroup, Name: "catalog-routes", Matches: []string{"read"}}, {Kind: KindTCPRoute, Name: "db"}}}}, routes...),
			"selected allow[TrafficTarget demo/tt from=[{demo web}] ports=[] methods=[GET] paths=[{RegularExpression /products.*}]; " +
				"TrafficTarget demo/tt from=[{demo web}] ports=[5432 8080] methods=[] paths=[]] deny[]"},
		{"traffic target limited to a port, wildcard method", append([]Policy{&TrafficTarget{Ref: Ref{"demo", "tt"},
			Destination: Principal{"demo", "catalog"}, Port: 8080, Sources: []Principal{web},
			Rules: []TrafficTargetRule{{Kind: KindHTTPRouteGroup, Name: "catalog-routes", Matches: []string{"any"}}, {Kind: KindTCPRoute, Name: "db"}}}}, routes...),
			"selected allow[TrafficTarget demo/tt from=[{demo web}] ports=[8080] methods=[] paths=[]; " +
				"TrafficTarget demo/tt from=[{demo web}] ports=[8080] methods=[] paths=[]] deny[]"},
		{"traffic target whose route is missing selects but grants nothing", []Policy{&TrafficTarget{Ref: Ref{"demo", "tt"},
			Destination: Principal{"demo", "catalog"}, Sources: []Principal{web}, Rules: []TrafficTargetRule{{Kind: KindTCPRoute, Name: "missing"}}}},
			"selected allow[] deny[]"},
		{"traffic target for another service account", []Policy{&TrafficTarget{Ref: Ref{"demo", "tt"},
			Destination: Principal{"demo", "web"}, Sources: []Principal{web}, Rules: []TrafficTargetRule{{Kind: KindTCPRoute, Name: "db"}}}},
			"<none>"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := NewStore()
			c := base
			c.PutPolicies = tc.policies
			if err := s.Apply("files", c); err != nil {
				t.Fatal(err)
			}
			if got := describeAuthz(s.Snapshot().Authz(Ref{"demo", "catalog-1"})); got != tc.want {
				t.Fatalf("authz\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestAuthzFollowsChangesAndKeepsItsPointer(t *testing.T) {
	s := NewStore()
	me := Ref{"demo", "catalog-1"}
	apply := func(c Changes) *Snapshot {
		t.Helper()
		if err := s.Apply("files", c); err != nil {
			t.Fatal(err)
		}
		return s.Snapshot()
	}
	w := wl("catalog-1", map[string]string{"app": "catalog"}, 14001, WorkloadPort{Port: 8080})
	tt := &TrafficTarget{Ref: Ref{"demo", "tt"}, Destination: Principal{"demo", "default"}, Sources: []Principal{{"demo", "web"}},
		Rules: []TrafficTargetRule{{Kind: KindTCPRoute, Name: "db"}}}
	apply(Changes{PutWorkloads: []*Workload{w}, PutPolicies: []Policy{tt}})
	first := s.Snapshot().Authz(me)
	if describeAuthz(first) != "selected allow[] deny[]" {
		t.Fatalf("before the route: %s", describeAuthz(first))
	}
	// The route arrives later, from another batch: resolution catches up.
	snap := apply(Changes{PutPolicies: []Policy{&TCPRoute{Ref: Ref{"demo", "db"}}}})
	withRoute := snap.Authz(me)
	if len(withRoute.Allow) != 1 {
		t.Fatalf("after the route: %s", describeAuthz(withRoute))
	}
	// An unrelated change keeps the same pointer: discovery compares them.
	snap = apply(Changes{PutWorkloads: []*Workload{wl("other-1", map[string]string{"app": "other"}, 14002)}})
	if snap.Authz(me) != withRoute {
		t.Error("an unrelated change made a new authz")
	}
	// Another namespace's policy does not touch it.
	snap = apply(Changes{PutPolicies: []Policy{&AuthorizationPolicy{Ref: Ref{"prod", "p"}, Target: PolicyTarget{ServiceAccount: "default"}, Action: AuthzDeny}}})
	if snap.Authz(me) != withRoute {
		t.Error("a policy of another namespace changed the authz")
	}
	// The workload changes identity: the TrafficTarget no longer selects it.
	w2 := *w
	w2.ServiceAccount = "catalog"
	snap = apply(Changes{PutWorkloads: []*Workload{&w2}})
	if snap.Authz(me) != nil {
		t.Errorf("after the identity change: %s", describeAuthz(snap.Authz(me)))
	}
	snap = apply(Changes{DeleteWorkloads: []Ref{me}})
	if snap.Authz(me) != nil {
		t.Error("a deleted workload keeps an authz")
	}
}

func TestPolicyValidation(t *testing.T) {
	tests := []struct {
		desc    string
		p       Policy
		wantErr string
	}{
		{"no target", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Action: AuthzAllow}, "spec.targetRef"},
		{"two targets", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a", ServiceAccount: "b"}, Action: AuthzAllow}, "exactly one"},
		{"bad action", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a"}, Action: "Maybe"}, "spec.action"},
		{"bad regex", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a"}, Action: AuthzAllow,
			Rules: []AuthzRule{{Paths: []PathMatch{{Type: PathRegex, Value: "(["}}}}}, "spec.rules[0].paths[0].value"},
		{"relative path", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a"}, Action: AuthzAllow,
			Rules: []AuthzRule{{Paths: []PathMatch{{Type: PathPrefix, Value: "api"}}}}}, "a path starts with /"},
		{"bad header", &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a"}, Action: AuthzAllow,
			Rules: []AuthzRule{{Headers: map[string]string{"x user": ".*"}}}}, "spec.rules[0].headers"},
		{"lower-case method", &HTTPRouteGroup{Ref: Ref{"demo", "g"}, Matches: []HTTPRouteMatch{{Name: "m", Methods: []string{"get"}}}}, "spec.matches[0].methods[0]"},
		{"duplicate match names", &HTTPRouteGroup{Ref: Ref{"demo", "g"}, Matches: []HTTPRouteMatch{{Name: "m"}, {Name: "m"}}}, "spec.matches[1].name"},
		{"traffic target without sources", &TrafficTarget{Ref: Ref{"demo", "t"}, Destination: Principal{"demo", "a"}, Rules: []TrafficTargetRule{{Kind: KindTCPRoute, Name: "r"}}}, "spec.sources"},
		{"traffic target across namespaces", &TrafficTarget{Ref: Ref{"demo", "t"}, Destination: Principal{"prod", "a"}, Sources: []Principal{{"demo", "b"}},
			Rules: []TrafficTargetRule{{Kind: KindTCPRoute, Name: "r"}}}, "spec.destination.namespace"},
		{"traffic target rule of unknown kind", &TrafficTarget{Ref: Ref{"demo", "t"}, Destination: Principal{"demo", "a"}, Sources: []Principal{{"demo", "b"}},
			Rules: []TrafficTargetRule{{Kind: "HTTPRoute", Name: "r"}}}, "spec.rules[0].kind"},
		{"tcp route port", &TCPRoute{Ref: Ref{"demo", "r"}, Ports: []uint32{0}}, "spec.matches.ports[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.p.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	ok := &AuthorizationPolicy{Ref: Ref{"demo", "p"}, Target: PolicyTarget{Service: "a"}, Action: AuthzAllow,
		Rules: []AuthzRule{{From: []Principal{{"*", "*"}}, Ports: []uint32{80}, Methods: []string{"GET", "*"},
			Paths: []PathMatch{{Type: PathExact, Value: "/"}}, Headers: map[string]string{"x-user": "alice|bob"}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a valid policy: %v", err)
	}
}

func TestMTLSMode(t *testing.T) {
	w := wl("catalog-1", map[string]string{"app": "catalog"}, 14001, WorkloadPort{Port: 8080})
	service := func(name string, mode MTLSMode) *Service {
		s := svc(name, map[string]string{"app": "catalog"}, ServicePort{Port: 80, TargetPort: 8080})
		s.MTLSMode = mode
		return s
	}
	tests := []struct {
		desc     string
		mesh     MTLSMode
		services []*Service
		want     bool
	}{
		{"strict by default", MTLSUnset, []*Service{service("catalog", MTLSUnset)}, false},
		{"mesh-wide permissive", MTLSPermissive, []*Service{service("catalog", MTLSUnset)}, true},
		{"service asks for permissive", MTLSUnset, []*Service{service("catalog", MTLSPermissive)}, true},
		{"service stays strict in a permissive mesh", MTLSPermissive, []*Service{service("catalog", MTLSStrict)}, false},
		{"strict wins between two services", MTLSUnset, []*Service{service("catalog", MTLSPermissive), service("catalog-admin", MTLSStrict)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			s := NewStore(WithMeshMTLS(tc.mesh))
			if err := s.Apply("files", Changes{PutServices: tc.services, PutWorkloads: []*Workload{w}}); err != nil {
				t.Fatal(err)
			}
			a := s.Snapshot().Authz(w.Ref)
			if got := a != nil && a.Permissive; got != tc.want {
				t.Fatalf("permissive %v, want %v (%s)", got, tc.want, describeAuthz(a))
			}
		})
	}
	// Turning a service permissive reaches its workloads.
	s := NewStore()
	if err := s.Apply("files", Changes{PutServices: []*Service{service("catalog", MTLSUnset)}, PutWorkloads: []*Workload{w}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply("files", Changes{PutServices: []*Service{service("catalog", MTLSPermissive)}}); err != nil {
		t.Fatal(err)
	}
	if a := s.Snapshot().Authz(w.Ref); a == nil || !a.Permissive {
		t.Fatalf("after the annotation: %s", describeAuthz(a))
	}
}

func TestRateLimitResolution(t *testing.T) {
	s := NewStore()
	w := wl("catalog-1", map[string]string{"app": "catalog"}, 14001, WorkloadPort{Port: 8080})
	other := wl("web-1", map[string]string{"app": "web"}, 14002, WorkloadPort{Port: 8081})
	limit := func(name string, rps uint32) *RateLimitPolicy {
		return &RateLimitPolicy{Ref: Ref{"demo", name}, Service: "catalog", RequestsPerSecond: rps, Burst: rps}
	}
	if err := s.Apply("files", Changes{
		PutServices:  []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80, TargetPort: 8080})},
		PutWorkloads: []*Workload{w, other},
		PutPolicies:  []Policy{limit("b-limit", 5), limit("a-limit", 100)},
	}); err != nil {
		t.Fatal(err)
	}
	a := s.Snapshot().Authz(w.Ref)
	if a == nil || a.RateLimit == nil || a.RateLimit.Policy != "RateLimitPolicy demo/a-limit" || a.RateLimit.RequestsPerSecond != 100 || a.Selected {
		t.Fatalf("catalog-1: %+v, want a-limit alone, nothing selected for authorization", a)
	}
	if s.Snapshot().Authz(other.Ref) != nil {
		t.Error("a workload the service does not select got a rate limit")
	}
}
