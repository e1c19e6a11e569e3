package model

import (
	"strings"
	"testing"
	"time"
)

func describeTable(t *RouteTable) string {
	if t == nil {
		return "<none>"
	}
	var out []string
	for _, r := range t.Rules {
		m := "*"
		if r.Match.Path != nil {
			m = string(r.Match.Path.Type) + ":" + r.Match.Path.Value
		}
		if r.Match.Method != "" {
			m += " " + r.Match.Method
		}
		for _, h := range r.Match.Headers {
			m += " " + h.Name + "=" + h.Value
		}
		out = append(out, r.Route+" "+m)
	}
	return strings.Join(out, "; ")
}

func TestRouteResolutionAndPrecedence(t *testing.T) {
	exact := &PathMatch{Type: PathExact, Value: "/products/1"}
	long := &PathMatch{Type: PathPrefix, Value: "/products"}
	regex := &PathMatch{Type: PathRegex, Value: "/p.*"}
	backends := []RouteBackend{{Service: "catalog-v1", Weight: 1}}
	split := &Route{Kind: KindTrafficSplit, Ref: Ref{"demo", "split"}, Parents: []RouteParent{{Service: "catalog"}},
		Rules: []RouteRule{{Backends: []RouteBackend{{Service: "catalog-v1", Weight: 90}, {Service: "catalog-v2", Weight: 10}}}}}
	http := &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "b-route"}, Parents: []RouteParent{{Service: "catalog", Port: 80}},
		Rules: []RouteRule{
			{Matches: []RouteMatch{{}}, Backends: backends},
			{Matches: []RouteMatch{{Path: long}, {Path: exact}}, Backends: backends},
			{Matches: []RouteMatch{{Path: long, Method: "GET"}, {Path: long, Headers: []ValueMatch{{Name: "x-user", Value: "alice"}}}}, Backends: backends},
			{Matches: []RouteMatch{{Path: regex}}, Backends: backends},
		}}
	other := &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "a-route"}, Parents: []RouteParent{{Service: "catalog"}},
		Rules: []RouteRule{{Matches: []RouteMatch{{Path: long}}, Backends: backends}}}
	tests := []struct {
		desc   string
		routes []*Route
		want   string
	}{
		{"none", nil, "<none>"},
		{"a TrafficSplit alone", []*Route{split}, "TrafficSplit demo/split *"},
		{"Gateway API routes win over a TrafficSplit, ordered by precedence", []*Route{split, http, other},
			"HTTPRoute demo/b-route Exact:/products/1; " +
				"HTTPRoute demo/b-route RegularExpression:/p.*; " +
				"HTTPRoute demo/b-route PathPrefix:/products GET; " +
				"HTTPRoute demo/b-route PathPrefix:/products x-user=alice; " +
				"HTTPRoute demo/a-route PathPrefix:/products; " +
				"HTTPRoute demo/b-route PathPrefix:/products; " +
				"HTTPRoute demo/b-route *"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := describeTable(resolveRoutes(Ref{"demo", "catalog"}, tc.routes)); got != tc.want {
				t.Fatalf("table\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestStoreAttachesRoutesToServices(t *testing.T) {
	s := NewStore()
	catalog := Ref{"demo", "catalog"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Apply("files", Changes{PutServices: []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80}),
		svc("catalog-v2", map[string]string{"app": "catalog", "version": "v2"}, ServicePort{Port: 80})}}))
	route := &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "canary"}, Parents: []RouteParent{{Service: "catalog"}},
		Rules: []RouteRule{{Backends: []RouteBackend{{Service: "catalog-v2", Weight: 1}}, Timeout: time.Second}}}
	must(s.Apply("files", Changes{PutPolicies: []Policy{route}}))
	st, _ := s.Snapshot().Service(catalog)
	if st.Routes == nil || len(st.Routes.Rules) != 1 || st.Routes.Rules[0].Rule.Timeout != time.Second {
		t.Fatalf("routes %s", describeTable(st.Routes))
	}
	if got := st.Routes.Backends(); len(got) != 1 || got[0] != "catalog-v2" {
		t.Errorf("backends %v", got)
	}
	// A route created before its service attaches once the service comes.
	must(s.Apply("files", Changes{PutPolicies: []Policy{&Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "early"}, Parents: []RouteParent{{Service: "stock"}},
		Rules: []RouteRule{{Backends: []RouteBackend{{Service: "stock", Weight: 1}}}}}}}))
	must(s.Apply("files", Changes{PutServices: []*Service{svc("stock", map[string]string{"app": "stock"}, ServicePort{Port: 9090})}}))
	if st, _ := s.Snapshot().Service(Ref{"demo", "stock"}); st.Routes == nil {
		t.Error("a route that came before its service is not attached")
	}
	must(s.Apply("files", Changes{DeletePolicies: []PolicyKey{route.Key()}}))
	if st, _ := s.Snapshot().Service(catalog); st.Routes != nil {
		t.Errorf("after the route is deleted: %s", describeTable(st.Routes))
	}
}

func TestRouteValidation(t *testing.T) {
	ok := RouteRule{Backends: []RouteBackend{{Service: "b", Weight: 1}}}
	tests := []struct {
		desc    string
		r       *Route
		wantErr string
	}{
		{"no parent", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Rules: []RouteRule{ok}}, "spec.parentRefs"},
		{"no backend", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}}, Rules: []RouteRule{{}}}, "spec.rules[0].backendRefs"},
		{"weight too big", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}},
			Rules: []RouteRule{{Backends: []RouteBackend{{Service: "b", Weight: 2_000_000}}}}}, "spec.rules[0].backendRefs[0].weight"},
		{"bad path regex", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}},
			Rules: []RouteRule{{Matches: []RouteMatch{{Path: &PathMatch{Type: PathRegex, Value: "("}}}, Backends: ok.Backends}}}, "spec.rules[0].matches[0].path.value"},
		{"header matched twice", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}},
			Rules: []RouteRule{{Matches: []RouteMatch{{Headers: []ValueMatch{{Name: "x-a", Value: "1"}, {Name: "X-A", Value: "2"}}}}, Backends: ok.Backends}}}, "spec.rules[0].matches[0].headers[1].name"},
		{"lower-case method", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}},
			Rules: []RouteRule{{Matches: []RouteMatch{{Method: "get"}}, Backends: ok.Backends}}}, "spec.rules[0].matches[0].method"},
		{"negative timeout", &Route{Kind: KindHTTPRoute, Ref: Ref{"demo", "r"}, Parents: []RouteParent{{Service: "a"}},
			Rules: []RouteRule{{Backends: ok.Backends, Timeout: -time.Second}}}, "spec.rules[0].timeouts.request"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.r.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}

func TestTrafficPoliciesAttachToServices(t *testing.T) {
	s := NewStore()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	retry := func(name string, attempts uint32) *RetryPolicy {
		return &RetryPolicy{Ref: Ref{"demo", name}, Service: "catalog", RetryOn: []string{RetryOn5xx}, Attempts: attempts,
			Budget: RetryBudget{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}}
	}
	must(s.Apply("files", Changes{
		PutServices: []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80})},
		PutPolicies: []Policy{retry("b-retries", 3), retry("a-retries", 2)},
	}))
	st, _ := s.Snapshot().Service(Ref{"demo", "catalog"})
	if st.Traffic == nil || st.Traffic.Retry == nil || st.Traffic.Retry.Ref.Name != "a-retries" || st.Traffic.Fault != nil {
		t.Fatalf("traffic %+v, want a-retries (the first by name) alone", st.Traffic)
	}
	must(s.Apply("files", Changes{DeletePolicies: []PolicyKey{{KindRetryPolicy, Ref{"demo", "a-retries"}}}}))
	st, _ = s.Snapshot().Service(Ref{"demo", "catalog"})
	if st.Traffic == nil || st.Traffic.Retry.Ref.Name != "b-retries" {
		t.Fatalf("after a-retries is deleted: %+v, want b-retries", st.Traffic)
	}
	must(s.Apply("files", Changes{DeletePolicies: []PolicyKey{{KindRetryPolicy, Ref{"demo", "b-retries"}}}}))
	if st, _ = s.Snapshot().Service(Ref{"demo", "catalog"}); st.Traffic != nil {
		t.Fatalf("with no policy left: %+v", st.Traffic)
	}
}

func TestTrafficPolicyValidation(t *testing.T) {
	base := func() *RetryPolicy {
		return &RetryPolicy{Ref: Ref{"demo", "r"}, Service: "catalog", RetryOn: []string{RetryOn5xx}, Attempts: 2,
			BackoffBase: time.Millisecond, BackoffMax: time.Second, Budget: RetryBudget{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}}
	}
	tests := []struct {
		desc    string
		p       Policy
		wantErr string
	}{
		{"unknown condition", func() Policy { p := base(); p.RetryOn = []string{"often"}; return p }(), "spec.retryOn[0]"},
		{"too many attempts", func() Policy { p := base(); p.Attempts = 11; return p }(), "spec.attempts"},
		{"max below base", func() Policy { p := base(); p.BackoffMax = 0; return p }(), "spec.backoff.max"},
		{"ratio over 1", func() Policy { p := base(); p.Budget.Ratio = 1.5; return p }(), "spec.budget.ratio"},
		{"short window", func() Policy { p := base(); p.Budget.Window = time.Millisecond; return p }(), "spec.budget.window"},
		{"fault with nothing to do", &FaultPolicy{Ref: Ref{"demo", "f"}, Service: "catalog"}, "set a delay or an abort"},
		{"abort without a status", &FaultPolicy{Ref: Ref{"demo", "f"}, Service: "catalog", AbortPercent: 10}, "spec.abort.httpStatus"},
		{"percent over 100", &FaultPolicy{Ref: Ref{"demo", "f"}, Service: "catalog", Delay: time.Second, DelayPercent: 120}, "spec.delay.percent"},
		{"breaker with nothing to do", &CircuitBreakerPolicy{Ref: Ref{"demo", "b"}, Service: "catalog"}, "set maxRequests or outlierDetection"},
		{"outlier detection counting nothing", &CircuitBreakerPolicy{Ref: Ref{"demo", "b"}, Service: "catalog",
			Outlier: &OutlierDetection{BaseEjection: time.Second, MaxEjectionPercent: 50}}, "spec.outlierDetection"},
		{"ejection percent 0", &CircuitBreakerPolicy{Ref: Ref{"demo", "b"}, Service: "catalog",
			Outlier: &OutlierDetection{Consecutive5xx: 1, BaseEjection: time.Second}}, "spec.outlierDetection.maxEjectionPercent"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate() = %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("a valid policy: %v", err)
	}
}
