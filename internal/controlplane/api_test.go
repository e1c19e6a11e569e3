package controlplane

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

func TestPolicySummary(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	tests := []struct {
		desc   string
		policy model.Policy
		want   string
	}{
		{"allow to a service", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{Service: "catalog"}, Action: model.AuthzAllow,
			Rules: []model.AuthzRule{{}, {}}}, "Allow to service catalog, 2 rules"},
		{"deny by labels", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{Selector: map[string]string{"version": "v2", "app": "catalog"}},
			Action: model.AuthzDeny, Rules: []model.AuthzRule{{}}}, "Deny to workloads app=catalog,version=v2, 1 rule"},
		{"allow nothing", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{ServiceAccount: "audit"}, Action: model.AuthzAllow},
			"Allow to service account audit, no rules: denies everything"},
		{"deny nothing", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{ServiceAccount: "audit"}, Action: model.AuthzDeny},
			"Deny to service account audit, no rules"},
		{"traffic target", &model.TrafficTarget{Ref: demo("t"), Destination: model.Principal{Namespace: "demo", ServiceAccount: "catalog"}, Port: 8080,
			Sources: []model.Principal{{Namespace: "demo", ServiceAccount: "web"}, {Namespace: "ops", ServiceAccount: "prometheus"}},
			Rules:   []model.TrafficTargetRule{{Kind: model.KindHTTPRouteGroup, Name: "routes", Matches: []string{"read", "list"}}, {Kind: model.KindTCPRoute, Name: "admin"}}},
			"demo/web, ops/prometheus -> catalog:8080 via HTTPRouteGroup routes [read,list], TCPRoute admin"},
		{"route group", &model.HTTPRouteGroup{Ref: demo("g"), Matches: []model.HTTPRouteMatch{{Name: "read"}, {Name: "write"}}}, "matches read, write"},
		{"tcp route", &model.TCPRoute{Ref: demo("r"), Ports: []uint32{7000, 7001}}, "ports 7000, 7001"},
		{"tcp route, any port", &model.TCPRoute{Ref: demo("r")}, "any port"},
		{"retry policy", &model.RetryPolicy{Ref: demo("r"), Service: "catalog", RetryOn: []string{"5xx", "reset"}, Attempts: 2,
			PerTryTimeout: 500 * time.Millisecond, Budget: model.RetryBudget{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}},
			"retry 5xx,reset x2, per try 500ms, budget 20% + 10/s over 10s"},
		{"retry policy, no per-try timeout, odd ratio", &model.RetryPolicy{Ref: demo("r"), Service: "stock", RetryOn: []string{"unavailable"}, Attempts: 10,
			Budget: model.RetryBudget{Ratio: 0.07, Window: time.Minute}},
			"retry unavailable x10, budget 7% + 0/s over 1m0s"},
		{"fault policy", &model.FaultPolicy{Ref: demo("f"), Service: "catalog", Headers: []model.ValueMatch{{Name: "x-chaos", Value: "on"}},
			Delay: 2 * time.Second, DelayPercent: 10, AbortHTTPStatus: 503, AbortGRPCCode: 14, AbortPercent: 5},
			"delay 2s for 10%, abort 503 for 5%, when x-chaos=on"},
		{"fault policy, abort only, two headers", &model.FaultPolicy{Ref: demo("f"), Service: "catalog",
			Headers: []model.ValueMatch{{Name: "x-chaos", Value: "on"}, {Name: "user-agent", Value: ".*curl.*", Regex: true}},
			Delay:   time.Second, AbortHTTPStatus: 500, AbortPercent: 12.5},
			"abort 500 for 12.5%, when x-chaos=on and user-agent~.*curl.*"},
		{"fault policy, delay for everyone", &model.FaultPolicy{Ref: demo("f"), Service: "catalog", Delay: 1500 * time.Millisecond, DelayPercent: 100},
			"delay 1.5s for 100%"},
		{"circuit breaker policy", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog", MaxRequests: 100,
			Outlier: &model.OutlierDetection{Consecutive5xx: 5, ConsecutiveGatewayErrors: 3, ConsecutiveConnectFailures: 2,
				BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}},
			"max 100 in flight; eject after 5 5xx / 3 gateway errors / 2 connect failures for 30s+, at most 50%"},
		{"circuit breaker policy, max requests only", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog", MaxRequests: 1},
			"max 1 in flight"},
		{"circuit breaker policy, every bound", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog", MaxRequests: 100,
			MaxConnections: 10, MaxPendingRequests: 50, MaxRequestsPerConnection: 1000,
			Outlier: &model.OutlierDetection{ConsecutiveGatewayErrors: 3, BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}},
			"max 100 in flight, 10 connections, 50 pending; 1000 requests per connection; eject after 3 gateway errors for 30s+, at most 50%"},
		{"circuit breaker policy, connections and their queue", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "audit",
			MaxConnections: 1, MaxPendingRequests: 5}, "max 1 connection, 5 pending"},
		{"circuit breaker policy, one request per connection", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "stock",
			MaxRequestsPerConnection: 1}, "1 request per connection"},
		{"circuit breaker policy, outlier detection only, counts of 1", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog",
			Outlier: &model.OutlierDetection{Consecutive5xx: 1, ConsecutiveConnectFailures: 1, BaseEjection: 90 * time.Second, MaxEjectionPercent: 100}},
			"eject after 1 5xx / 1 connect failure for 1m30s+, at most 100%"},
		{"circuit breaker policy, gateway errors only", &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog",
			Outlier: &model.OutlierDetection{ConsecutiveGatewayErrors: 1, BaseEjection: time.Second, MaxEjectionPercent: 10}},
			"eject after 1 gateway error for 1s+, at most 10%"},
		{"rate limit policy", &model.RateLimitPolicy{Ref: demo("l"), Service: "catalog", RequestsPerSecond: 100, Burst: 200},
			"100 requests/s per workload, burst 200"},
		{"rate limit policy, burst of 1", &model.RateLimitPolicy{Ref: demo("l"), Service: "catalog", RequestsPerSecond: 1, Burst: 1},
			"1 request/s per workload, burst 1"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := policySummary(tc.policy); got != tc.want {
				t.Errorf("summary = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	const manifests = `
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: demo}
spec: {selector: {app: catalog}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: catalog-v1, namespace: demo}
spec: {selector: {app: catalog, version: v1}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: catalog-v2, namespace: demo}
spec: {selector: {app: catalog, version: v2}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: stock, namespace: demo}
spec: {selector: {app: stock}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-typo, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog-v1}]
  rules: [{backendRefs: [{name: catalog-v3}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-canary, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{headers: [{name: x-canary, value: always}]}, {path: {type: Exact, value: /new}, method: GET}]
    backendRefs: [{name: catalog-v2, port: 80}]
  - backendRefs: [{name: catalog-v1, port: 80, weight: 90}, {name: catalog-v2, port: 80, weight: 10}]
    timeouts: {request: 2s}
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-debug]}}]
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: catalog-split, namespace: demo}
spec:
  service: catalog
  backends: [{service: catalog-v1, weight: 90}, {service: catalog-v2, weight: 10}]
---
apiVersion: split.smi-spec.io/v1alpha2
kind: TrafficSplit
metadata: {name: stock-split, namespace: demo}
spec:
  service: stock
  backends: [{service: stock, weight: 9}, {service: catalog-v1, weight: 1}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: wrong-port, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog-v1, port: 8080}]
  rules: [{backendRefs: [{name: catalog-v1}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: two-parents, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog-v1}, {group: "", kind: Service, name: gone, port: 9090}]
  rules:
  - matches: [{method: {service: weft.demo.v1.Stock}}]
    backendRefs: [{name: stock, port: 9090}]
`
	d := manifest.Decode("routes.yaml", []byte(manifests))
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	var c model.Changes
	for _, o := range d.Objects {
		if o.Service != nil {
			c.PutServices = append(c.PutServices, o.Service)
		} else {
			c.PutPolicies = append(c.PutPolicies, o.Policy)
		}
	}
	store := model.NewStore()
	if err := store.Apply("test", c); err != nil {
		t.Fatal(err)
	}
	// Routes admitted with catalog-v2 stay in force once it is gone.
	if err := store.Apply("test", model.Changes{DeleteServices: []model.Ref{{Namespace: "demo", Name: "catalog-v2"}}}); err != nil {
		t.Fatal(err)
	}
	missingV2 := []string{"rejected; the version admitted last stays in force", "backend service demo/catalog-v2 no longer exists; its share of requests fails with 500"}
	want := []Route{
		{Kind: model.KindGRPCRoute, Namespace: "demo", Name: "two-parents", Parents: []string{"catalog-v1", "gone:9090"},
			Summary: "1 rule; prefix /weft.demo.v1.Stock/ -> backends stock",
			Status: []RouteStatus{
				{Parent: "catalog-v1", InForce: true},
				{Parent: "gone:9090", Reasons: []string{"service demo/gone does not exist"}},
			}},
		{Kind: model.KindHTTPRoute, Namespace: "demo", Name: "catalog-canary", Parents: []string{"catalog:80"},
			Summary:  "2 rules; header x-canary=always or GET exact /new -> backends catalog-v2; backends catalog-v1 90, catalog-v2 10, timeout 2s, request headers changed",
			Status:   []RouteStatus{{Parent: "catalog:80", InForce: true, Reasons: missingV2}},
			Rejected: "spec.rules[0].backendRefs[0].name: service demo/catalog-v2 does not exist; spec.rules[1].backendRefs[1].name: service demo/catalog-v2 does not exist"},
		{Kind: model.KindHTTPRoute, Namespace: "demo", Name: "catalog-typo", Parents: []string{"catalog-v1"},
			Summary: "1 rule; backends catalog-v3",
			Status:  []RouteStatus{{Parent: "catalog-v1"}},
			Rejected: "spec.rules[0].backendRefs[0].name: service demo/catalog-v3 does not exist; " +
				"spec.rules[0].matches: the same match as HTTPRoute demo/wrong-port spec.rules[0].matches on service catalog-v1, which is in force"},
		{Kind: model.KindHTTPRoute, Namespace: "demo", Name: "wrong-port", Parents: []string{"catalog-v1:8080"},
			Summary: "1 rule; backends catalog-v1",
			Status:  []RouteStatus{{Parent: "catalog-v1:8080", Reasons: []string{"service demo/catalog-v1 has no port 8080"}}}},
		{Kind: model.KindTrafficSplit, Namespace: "demo", Name: "catalog-split", Parents: []string{"catalog"},
			Summary: "1 rule; backends catalog-v1 90, catalog-v2 10",
			Status: []RouteStatus{{Parent: "catalog", Reasons: []string{
				"HTTPRoute demo/catalog-canary addresses the same service; Gateway API routes take precedence over SMI TrafficSplit",
			}}},
			Rejected: "spec.backends[1].service: service demo/catalog-v2 does not exist"},
		{Kind: model.KindTrafficSplit, Namespace: "demo", Name: "stock-split", Parents: []string{"stock"},
			Summary: "1 rule; backends stock 9, catalog-v1 1",
			Status:  []RouteStatus{{Parent: "stock", InForce: true, Reasons: []string{"backend service demo/catalog-v1 has no port 9090"}}}},
	}
	got := routes(store.Snapshot())
	if !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.MarshalIndent(got, "", "  ")
		wantJSON, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("routes =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}

func TestRouteSummary(t *testing.T) {
	r := &model.Route{Rules: []model.RouteRule{{
		Matches: []model.RouteMatch{
			{},
			{Path: &model.PathMatch{Type: model.PathRegex, Value: "/v[0-9]+"}, Query: []model.ValueMatch{{Name: "beta", Value: "1|true", Regex: true}}},
		},
		Backends: []model.RouteBackend{{Service: "catalog-v2", Weight: 0}},
	}}}
	if got, want := routeSummary(r), "1 rule; any or regex /v[0-9]+ query beta~1|true -> backends catalog-v2 0"; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
}

func TestPolicies(t *testing.T) {
	const manifests = `
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: demo}
spec: {selector: {app: catalog}, ports: [{name: http, port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: stock, namespace: demo}
spec: {selector: {app: stock}, ports: [{name: grpc, port: 9090}]}
---
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-readers, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  rules: [{from: [{serviceAccount: web}]}]
---
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: catalog-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  retryOn: [5xx, reset]
  perTryTimeout: 500ms
---
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: more-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  retryOn: [gateway-error]
  attempts: 5
---
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: stock-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: stock}
  retryOn: [unavailable, resource-exhausted]
  budget: {ratio: 0, minPerSecond: 2}
---
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: catalog-faults, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  match: {headers: [{name: x-chaos, value: "on"}]}
  delay: {fixedDelay: 2s, percent: 10}
  abort: {httpStatus: 503, grpcStatus: 14, percent: 5}
---
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: ghost-faults, namespace: demo}
spec:
  targetRef: {kind: Service, name: ghost}
  abort: {httpStatus: 500, percent: 100}
---
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: catalog-breaker, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  maxRequests: 100
  outlierDetection: {consecutive5xx: 5, consecutiveGatewayErrors: 3, consecutiveConnectFailures: 2}
---
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: catalog-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  maxRequests: 10
---
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: stock-ejection, namespace: demo}
spec:
  targetRef: {kind: Service, name: stock}
  outlierDetection: {consecutiveConnectFailures: 1, baseEjectionTime: 10s, maxEjectionPercent: 100}
---
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: ghost-breaker, namespace: demo}
spec:
  targetRef: {kind: Service, name: ghost}
  maxRequests: 1
---
apiVersion: v1
kind: Service
metadata: {name: catalog-v1, namespace: demo}
spec: {selector: {app: catalog, version: v1}, ports: [{name: http, port: 80}]}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: catalog-0, namespace: demo, labels: {app: catalog, version: v1}}
spec: {serviceAccount: catalog, address: 127.0.0.1, ports: [{name: http, port: 8080}], proxy: {inboundPort: 4143}}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: catalog-1, namespace: demo, labels: {app: catalog, version: v2}}
spec: {serviceAccount: catalog, address: 127.0.0.2, ports: [{name: http, port: 8080}], proxy: {inboundPort: 4143}}
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: other-catalog, namespace: other, labels: {app: catalog, version: v2}}
spec: {serviceAccount: catalog, address: 127.0.0.3, ports: [{name: http, port: 8080}], proxy: {inboundPort: 4143}}
---
# First by name: in force on catalog-0, which catalog-v1 selects, so
# neither catalog-v1-limit nor catalog-strict-limit is there.
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: a-v1-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog-v1}
  requestsPerSecond: 5
---
# In force on catalog-1 only.
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: catalog-rate, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  requestsPerSecond: 100
  burst: 200
---
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: catalog-strict-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  requestsPerSecond: 10
---
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: catalog-v1-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog-v1}
  requestsPerSecond: 50
  burst: 10
---
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: stock-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: stock}
  requestsPerSecond: 1000
---
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: ghost-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: ghost}
  requestsPerSecond: 1
`
	d := manifest.Decode("policies.yaml", []byte(manifests))
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	var c model.Changes
	for _, o := range d.Objects {
		switch {
		case o.Service != nil:
			c.PutServices = append(c.PutServices, o.Service)
		case o.Workload != nil:
			c.PutWorkloads = append(c.PutWorkloads, o.Workload)
		default:
			c.PutPolicies = append(c.PutPolicies, o.Policy)
		}
	}
	store := model.NewStore()
	if err := store.Apply("test", c); err != nil {
		t.Fatal(err)
	}
	inForce := &PolicyStatus{InForce: true}
	want := []Policy{
		{Kind: model.KindAuthorizationPolicy, Namespace: "demo", Name: "catalog-readers", Summary: "Allow to service catalog, 1 rule"},
		{Kind: model.KindCircuitBreakerPolicy, Namespace: "demo", Name: "catalog-breaker",
			Summary: "max 100 in flight; eject after 5 5xx / 3 gateway errors / 2 connect failures for 30s+, at most 50%", Status: inForce},
		{Kind: model.KindCircuitBreakerPolicy, Namespace: "demo", Name: "catalog-limit", Summary: "max 10 in flight",
			Status: &PolicyStatus{Reason: "CircuitBreakerPolicy demo/catalog-breaker already applies to service demo/catalog (the first by name is in force)"}},
		{Kind: model.KindCircuitBreakerPolicy, Namespace: "demo", Name: "ghost-breaker", Summary: "max 1 in flight",
			Status: &PolicyStatus{Reason: "service demo/ghost does not exist"}},
		{Kind: model.KindCircuitBreakerPolicy, Namespace: "demo", Name: "stock-ejection",
			Summary: "eject after 1 connect failure for 10s+, at most 100%", Status: inForce},
		{Kind: model.KindFaultPolicy, Namespace: "demo", Name: "catalog-faults",
			Summary: "delay 2s for 10%, abort 503 for 5%, when x-chaos=on", Status: inForce},
		{Kind: model.KindFaultPolicy, Namespace: "demo", Name: "ghost-faults",
			Summary: "abort 500 for 100%", Status: &PolicyStatus{Reason: "service demo/ghost does not exist"}},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "a-v1-limit",
			Summary: "5 requests/s per workload, burst 5", Status: inForce},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "catalog-rate",
			Summary: "100 requests/s per workload, burst 200", Status: inForce},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "catalog-strict-limit",
			Summary: "10 requests/s per workload, burst 10",
			Status:  &PolicyStatus{Reason: "RateLimitPolicy demo/a-v1-limit and RateLimitPolicy demo/catalog-rate already apply to the workloads of service demo/catalog (the first by name is in force)"}},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "catalog-v1-limit",
			Summary: "50 requests/s per workload, burst 10",
			Status:  &PolicyStatus{Reason: "RateLimitPolicy demo/a-v1-limit already applies to the workloads of service demo/catalog-v1 (the first by name is in force)"}},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "ghost-limit",
			Summary: "1 request/s per workload, burst 1", Status: &PolicyStatus{Reason: "service demo/ghost does not exist"}},
		{Kind: model.KindRateLimitPolicy, Namespace: "demo", Name: "stock-limit",
			Summary: "1000 requests/s per workload, burst 1000", Status: &PolicyStatus{Reason: "service demo/stock selects no workload"}},
		{Kind: model.KindRetryPolicy, Namespace: "demo", Name: "catalog-retries",
			Summary: "retry 5xx,reset x2, per try 500ms, budget 20% + 10/s over 10s", Status: inForce},
		{Kind: model.KindRetryPolicy, Namespace: "demo", Name: "more-retries",
			Summary: "retry gateway-error x5, budget 20% + 10/s over 10s",
			Status:  &PolicyStatus{Reason: "RetryPolicy demo/catalog-retries already applies to service demo/catalog (the first by name is in force)"}},
		{Kind: model.KindRetryPolicy, Namespace: "demo", Name: "stock-retries",
			Summary: "retry unavailable,resource-exhausted x2, budget 0% + 2/s over 10s", Status: inForce},
	}
	got := policies(store.Snapshot())
	if !reflect.DeepEqual(got, want) {
		gotJSON, _ := json.MarshalIndent(got, "", "  ")
		wantJSON, _ := json.MarshalIndent(want, "", "  ")
		t.Errorf("policies =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}
