package manifest

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

const goodRetryPolicy = `
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: catalog-retries, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  retryOn: [5xx, gateway-error, reset, unavailable, resource-exhausted, cancelled]
  attempts: 3
  perTryTimeout: 500ms
  backoff: {base: 50ms, max: 1s}
  budget: {ratio: 0.5, minPerSecond: 5, window: 1m}
`

const goodFaultPolicy = `
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: catalog-faults, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  match:
    headers:
    - {name: x-chaos, value: "on"}
    - {type: RegularExpression, name: user-agent, value: ".*curl.*"}
  delay: {fixedDelay: 2s, percent: 10}
  abort: {httpStatus: 503, grpcStatus: 14, percent: 5}
`

const goodCircuitBreakerPolicy = `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: catalog-breaker, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  maxRequests: 100
  maxConnections: 10
  maxPendingRequests: 50
  maxRequestsPerConnection: 1000
  outlierDetection:
    consecutive5xx: 5
    consecutiveGatewayErrors: 3
    consecutiveConnectFailures: 2
    baseEjectionTime: 1m
    maxEjectionPercent: 100
`

const goodRateLimitPolicy = `
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: catalog-limit, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  requestsPerSecond: 100
  burst: 200
`

func TestDecodeTrafficPolicies(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	allConditions := []string{"5xx", "gateway-error", "reset", "unavailable", "resource-exhausted", "cancelled"}
	tests := []struct {
		desc string
		doc  string
		want model.Policy
	}{
		{"retry policy", goodRetryPolicy, &model.RetryPolicy{
			Ref: demo("catalog-retries"), Service: "catalog", RetryOn: allConditions,
			Attempts: 3, PerTryTimeout: 500 * time.Millisecond,
			BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second,
			Budget: model.RetryBudget{Ratio: 0.5, MinPerSecond: 5, Window: time.Minute},
		}},
		{"retry policy, defaults", `
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: r}
spec:
  targetRef: {group: "", kind: Service, name: catalog}
  retryOn: [5xx]
`, &model.RetryPolicy{
			Ref: model.Ref{Namespace: DefaultNamespace, Name: "r"}, Service: "catalog", RetryOn: []string{"5xx"},
			Attempts: 2, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			Budget: model.RetryBudget{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second},
		}},
		{"retry policy, partial backoff and budget, ratio 0", `
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: r, namespace: demo}
spec:
  targetRef: {group: core, kind: Service, name: stock}
  retryOn: [unavailable]
  attempts: 10
  perTryTimeout: 0s
  backoff: {base: 10ms}
  budget: {ratio: 0}
`, &model.RetryPolicy{
			Ref: demo("r"), Service: "stock", RetryOn: []string{"unavailable"},
			Attempts: 10, BackoffBase: 10 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			Budget: model.RetryBudget{Ratio: 0, MinPerSecond: 10, Window: 10 * time.Second},
		}},
		{"retry policy, no minimum", `
apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: r, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  retryOn: [reset]
  attempts: 1
  backoff: {max: 25ms}
  budget: {minPerSecond: 0, window: 1s}
`, &model.RetryPolicy{
			Ref: demo("r"), Service: "catalog", RetryOn: []string{"reset"},
			Attempts: 1, BackoffBase: 25 * time.Millisecond, BackoffMax: 25 * time.Millisecond,
			Budget: model.RetryBudget{Ratio: 0.2, MinPerSecond: 0, Window: time.Second},
		}},
		{"fault policy", goodFaultPolicy, &model.FaultPolicy{
			Ref: demo("catalog-faults"), Service: "catalog",
			Headers:      []model.ValueMatch{{Name: "x-chaos", Value: "on"}, {Name: "user-agent", Value: ".*curl.*", Regex: true}},
			Delay:        2 * time.Second,
			DelayPercent: 10,
			AbortPercent: 5, AbortHTTPStatus: 503, AbortGRPCCode: 14,
		}},
		{"fault policy, delay only, decimal percent", `
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: f, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  delay: {fixedDelay: 1m30s, percent: 0.5}
`, &model.FaultPolicy{Ref: demo("f"), Service: "catalog", Delay: 90 * time.Second, DelayPercent: 0.5}},
		{"fault policy, abort only, every request", `
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: f, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  match: {}
  abort: {httpStatus: 500, percent: 100}
`, &model.FaultPolicy{Ref: demo("f"), Service: "catalog", AbortHTTPStatus: 500, AbortPercent: 100}},
		{"fault policy, delay switched off", `
apiVersion: weft.dev/v1alpha1
kind: FaultPolicy
metadata: {name: f, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  delay: {fixedDelay: 1s, percent: 0}
  abort: {httpStatus: 429, grpcStatus: 8, percent: 12.5}
`, &model.FaultPolicy{Ref: demo("f"), Service: "catalog", Delay: time.Second, AbortHTTPStatus: 429, AbortGRPCCode: 8, AbortPercent: 12.5}},
		{"circuit breaker policy", goodCircuitBreakerPolicy, &model.CircuitBreakerPolicy{
			Ref: demo("catalog-breaker"), Service: "catalog", MaxRequests: 100,
			MaxConnections: 10, MaxPendingRequests: 50, MaxRequestsPerConnection: 1000,
			Outlier: &model.OutlierDetection{
				Consecutive5xx: 5, ConsecutiveGatewayErrors: 3, ConsecutiveConnectFailures: 2,
				BaseEjection: time.Minute, MaxEjectionPercent: 100,
			},
		}},
		{"circuit breaker policy, max requests only", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b}
spec:
  targetRef: {group: "", kind: Service, name: catalog}
  maxRequests: 1
`, &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: DefaultNamespace, Name: "b"}, Service: "catalog", MaxRequests: 1}},
		{"circuit breaker policy, connections only", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b, namespace: demo}
spec:
  targetRef: {kind: Service, name: audit}
  maxConnections: 2
  maxPendingRequests: 5
`, &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "audit", MaxConnections: 2, MaxPendingRequests: 5}},
		{"circuit breaker policy, requests per connection only", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b, namespace: demo}
spec:
  targetRef: {kind: Service, name: stock}
  maxRequestsPerConnection: 1
  maxPendingRequests: 0
`, &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "stock", MaxRequestsPerConnection: 1}},
		{"circuit breaker policy, a queue for requests in flight", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b, namespace: demo}
spec:
  targetRef: {kind: Service, name: stock}
  maxRequests: 2
  maxPendingRequests: 2147483647
`, &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "stock", MaxRequests: 2, MaxPendingRequests: 2147483647}},
		{"circuit breaker policy, outlier detection defaults", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b, namespace: demo}
spec:
  targetRef: {group: core, kind: Service, name: stock}
  outlierDetection: {consecutiveConnectFailures: 1}
`, &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "stock",
			Outlier: &model.OutlierDetection{ConsecutiveConnectFailures: 1, BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}}},
		{"circuit breaker policy, kinds and bound switched off by 0", `
apiVersion: weft.dev/v1alpha1
kind: CircuitBreakerPolicy
metadata: {name: b, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  maxRequests: 0
  outlierDetection: {consecutive5xx: 0, consecutiveGatewayErrors: 10, baseEjectionTime: 1s, maxEjectionPercent: 1}
`, &model.CircuitBreakerPolicy{Ref: demo("b"), Service: "catalog",
			Outlier: &model.OutlierDetection{ConsecutiveGatewayErrors: 10, BaseEjection: time.Second, MaxEjectionPercent: 1}}},
		{"rate limit policy", goodRateLimitPolicy, &model.RateLimitPolicy{
			Ref: demo("catalog-limit"), Service: "catalog", RequestsPerSecond: 100, Burst: 200}},
		{"rate limit policy, burst defaults to the rate", `
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: l}
spec:
  targetRef: {group: "", kind: Service, name: stock}
  requestsPerSecond: 50
`, &model.RateLimitPolicy{Ref: model.Ref{Namespace: DefaultNamespace, Name: "l"}, Service: "stock", RequestsPerSecond: 50, Burst: 50}},
		{"rate limit policy, bounds", `
apiVersion: weft.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: l, namespace: demo}
spec:
  targetRef: {group: core, kind: Service, name: catalog}
  requestsPerSecond: 1000000
  burst: 1
`, &model.RateLimitPolicy{Ref: demo("l"), Service: "catalog", RequestsPerSecond: 1_000_000, Burst: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := decodeOnePolicy(t, tc.doc, tc.want); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("policy =\n%s\nwant\n%s", toJSON(t, got), toJSON(t, tc.want))
			}
		})
	}
}

func TestDecodeTrafficPolicyErrors(t *testing.T) {
	retry := func(old, new string) string { return mustReplace(t, goodRetryPolicy, old, new) }
	fault := func(old, new string) string { return mustReplace(t, goodFaultPolicy, old, new) }
	breaker := func(old, new string) string { return mustReplace(t, goodCircuitBreakerPolicy, old, new) }
	limit := func(old, new string) string { return mustReplace(t, goodRateLimitPolicy, old, new) }
	// breakerSpec is the good circuit breaker policy with the spec after
	// its targetRef replaced by rest.
	breakerHead, _, _ := strings.Cut(goodCircuitBreakerPolicy, "  maxRequests:")
	breakerSpec := func(rest string) string { return breakerHead + rest }
	tests := []struct {
		desc string
		doc  string
		want []string
	}{
		// RetryPolicy.
		{"unknown condition", retry("reset,", "retriable-4xx,"),
			[]string{"retrypolicy demo/catalog-retries", `spec.retryOn[2]: "retriable-4xx": want one of`}},
		{"condition twice", retry("reset,", "reset, 5xx,"),
			[]string{`spec.retryOn[3]: "5xx" is given twice`}},
		{"no conditions", retry("  retryOn: [5xx, gateway-error, reset, unavailable, resource-exhausted, cancelled]\n", ""),
			[]string{"spec.retryOn: name at least one condition"}},
		{"attempts 0", retry("attempts: 3", "attempts: 0"),
			[]string{"spec.attempts: 0: want 1 to 10"}},
		{"attempts 11", retry("attempts: 3", "attempts: 11"),
			[]string{"spec.attempts: 11: want 1 to 10"}},
		{"negative attempts", retry("attempts: 3", "attempts: -1"),
			[]string{"spec.attempts: must not be negative, got -1"}},
		{"max below base", retry("max: 1s", "max: 10ms"),
			[]string{"spec.backoff.max: 10ms is less than base 50ms"}},
		{"default max below base", retry("backoff: {base: 50ms, max: 1s}", "backoff: {base: 500ms}"),
			[]string{"spec.backoff.max: 250ms is less than base 500ms"}},
		{"ratio 1.5", retry("ratio: 0.5", "ratio: 1.5"),
			[]string{"spec.budget.ratio: 1.5: want 0 to 1"}},
		{"negative ratio", retry("ratio: 0.5", "ratio: -0.1"),
			[]string{"spec.budget.ratio: -0.1: want 0 to 1"}},
		{"negative minimum", retry("minPerSecond: 5", "minPerSecond: -5"),
			[]string{"spec.budget.minPerSecond: must not be negative, got -5"}},
		{"short window", retry("window: 1m", "window: 500ms"),
			[]string{"spec.budget.window: 500ms: want at least 1s"}},
		{"bad per-try timeout", retry("perTryTimeout: 500ms", "perTryTimeout: 0.5s"),
			[]string{`spec.perTryTimeout: "0.5s": want a Gateway API duration such as 10s, 500ms or 1m30s`}},
		{"per-try timeout too long", retry("perTryTimeout: 500ms", "perTryTimeout: 2h"),
			[]string{"spec.perTryTimeout: 2h0m0s: want 0 to 1h"}},
		{"bad backoff duration", retry("base: 50ms", `base: "50"`),
			[]string{`spec.backoff.base: "50": want a Gateway API duration`}},
		{"bad window", retry("window: 1m", "window: -1m"),
			[]string{`spec.budget.window: "-1m": want a Gateway API duration`}},
		{"duration not a string", retry("perTryTimeout: 500ms", "perTryTimeout: 500"),
			[]string{"retrypolicy demo/catalog-retries", "spec.perTryTimeout"}},
		{"target kind", retry("kind: Service,", "kind: Deployment,"),
			[]string{`spec.targetRef.kind: "Deployment": want Service`}},
		{"target kind omitted", retry("{kind: Service, name: catalog}", "{name: catalog}"),
			[]string{`spec.targetRef.kind: "": want Service`}},
		{"target group", retry("{kind: Service,", "{group: gateway.networking.k8s.io, kind: Service,"),
			[]string{`spec.targetRef.group: "gateway.networking.k8s.io": a Service is in the core group, ""`}},
		{"target name", retry("name: catalog}", "name: Catalog_1}"),
			[]string{"spec.targetRef.name"}},
		{"no target", retry("  targetRef: {kind: Service, name: catalog}\n", ""),
			[]string{`spec.targetRef.kind: "": want Service`}},
		{"target namespace", retry("name: catalog}", "name: catalog, namespace: shop}"),
			[]string{`unknown field "spec.targetRef.namespace"`}},
		{"unknown field", retry("attempts: 3", "retries: 3"),
			[]string{"retrypolicy demo/catalog-retries", `unknown field "spec.retries"`}},
		{"other version", retry("weft.dev/v1alpha1", "weft.dev/v1beta1"),
			[]string{`apiVersion: "weft.dev/v1beta1": weft reads RetryPolicy as weft.dev/v1alpha1`}},
		// FaultPolicy.
		{"delay percent 101", fault("percent: 10}", "percent: 101}"),
			[]string{"faultpolicy demo/catalog-faults", "spec.delay.percent: 101: want 0 to 100"}},
		{"abort percent 100.5", fault("percent: 5}", "percent: 100.5}"),
			[]string{"spec.abort.percent: 100.5: want 0 to 100"}},
		{"negative percent", fault("percent: 5}", "percent: -5}"),
			[]string{"spec.abort.percent: -5: want 0 to 100"}},
		{"percent not a number", fault("percent: 5}", `percent: "5%"}`),
			[]string{"faultpolicy demo/catalog-faults", "spec.abort.percent"}},
		{"delay without percent", fault("{fixedDelay: 2s, percent: 10}", "{fixedDelay: 2s}"),
			[]string{"spec.delay.percent: must be set (0 to 100)"}},
		{"delay without duration", fault("{fixedDelay: 2s, percent: 10}", "{percent: 10}"),
			[]string{"spec.delay.fixedDelay: must be set"}},
		{"zero delay", fault("fixedDelay: 2s", "fixedDelay: 0s"),
			[]string{"spec.delay.fixedDelay: 0s: want more than 0, at most 1h"}},
		{"bad delay", fault("fixedDelay: 2s", "fixedDelay: 2 seconds"),
			[]string{`spec.delay.fixedDelay: "2 seconds": want a Gateway API duration`}},
		{"abort without status", fault("httpStatus: 503, ", ""),
			[]string{"spec.abort.httpStatus: must be set"}},
		{"abort status", fault("httpStatus: 503", "httpStatus: 99"),
			[]string{"spec.abort.httpStatus: 99: want 200 to 599"}},
		{"abort without percent", fault(", percent: 5}", "}"),
			[]string{"spec.abort.percent: must be set (0 to 100)"}},
		{"grpc status 0", fault("grpcStatus: 14", "grpcStatus: 0"),
			[]string{"spec.abort.grpcStatus: 0: want a gRPC code, 1 to 16"}},
		{"grpc status 17", fault("grpcStatus: 14", "grpcStatus: 17"),
			[]string{"spec.abort.grpcStatus: 17: want a gRPC code, 1 to 16"}},
		{"no delay and no abort", fault("  delay: {fixedDelay: 2s, percent: 10}\n  abort: {httpStatus: 503, grpcStatus: 14, percent: 5}\n", ""),
			[]string{"spec: set a delay, an abort or both"}},
		{"both at 0 percent", mustReplace(t, fault("percent: 10}", "percent: 0}"), "percent: 5}", "percent: 0}"),
			[]string{"spec: set a delay or an abort with a percent above 0"}},
		{"target kind", fault("kind: Service,", "kind: ServiceAccount,"),
			[]string{`spec.targetRef.kind: "ServiceAccount": want Service`}},
		{"bad header regex", fault(`value: ".*curl.*"`, `value: "(curl"`),
			[]string{"spec.match.headers[1].value", "missing closing )"}},
		{"header match type", fault("type: RegularExpression", "type: Prefix"),
			[]string{`spec.match.headers[1].type: "Prefix": want Exact or RegularExpression`}},
		{"header name", fault("name: x-chaos", `name: "x chaos"`),
			[]string{`spec.match.headers[0].name: "x chaos" is not a header name`}},
		{"header twice", fault("name: user-agent", "name: X-Chaos"),
			[]string{`spec.match.headers[1].name: header "X-Chaos" is given twice`}},
		{"fault unknown field", fault("delay: {fixedDelay: 2s", "delay: {fixed: 2s"),
			[]string{`unknown field "spec.delay.fixed"`}},
		// CircuitBreakerPolicy.
		{"nothing set", breakerSpec(""),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec: set maxRequests or outlierDetection, or a connection limit: maxConnections, maxRequestsPerConnection"}},
		{"every bound 0", breakerSpec("  maxRequests: 0\n  maxConnections: 0\n  maxPendingRequests: 0\n  maxRequestsPerConnection: 0\n"),
			[]string{"spec: set maxRequests or outlierDetection"}},
		{"a queue alone", breakerSpec("  maxPendingRequests: 10\n"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec: set maxRequests",
				"spec.maxPendingRequests: 10: requests wait only for maxRequests or maxConnections"}},
		{"a queue with only a per-connection limit", breakerSpec("  maxPendingRequests: 10\n  maxRequestsPerConnection: 100\n"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxPendingRequests: 10: requests wait only for maxRequests or maxConnections"}},
		{"negative max connections", breaker("maxConnections: 10", "maxConnections: -1"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxConnections: must not be negative, got -1"}},
		{"negative max pending requests", breaker("maxPendingRequests: 50", "maxPendingRequests: -50"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxPendingRequests: must not be negative, got -50"}},
		{"negative max requests per connection", breaker("maxRequestsPerConnection: 1000", "maxRequestsPerConnection: -2"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxRequestsPerConnection: must not be negative, got -2"}},
		{"max connections too large", breaker("maxConnections: 10", "maxConnections: 2147483648"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxConnections"}},
		{"max pending requests not whole", breaker("maxPendingRequests: 50", "maxPendingRequests: 2.5"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxPendingRequests"}},
		{"max requests per connection a string", breaker("maxRequestsPerConnection: 1000", `maxRequestsPerConnection: "1k"`),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxRequestsPerConnection"}},
		{"max connections misspelt", breaker("maxConnections: 10", "maxConnection: 10"),
			[]string{`unknown field "spec.maxConnection"`}},
		{"outlier detection without counts", breaker("    consecutive5xx: 5\n    consecutiveGatewayErrors: 3\n    consecutiveConnectFailures: 2\n", ""),
			[]string{"spec.outlierDetection: set at least one of consecutive5xx, consecutiveGatewayErrors, consecutiveConnectFailures"}},
		{"outlier detection empty", breakerSpec("  outlierDetection: {}\n"),
			[]string{"spec.outlierDetection: set at least one of"}},
		{"outlier detection counts all 0", mustReplace(t, mustReplace(t, breaker("consecutive5xx: 5", "consecutive5xx: 0"),
			"consecutiveGatewayErrors: 3", "consecutiveGatewayErrors: 0"), "consecutiveConnectFailures: 2", "consecutiveConnectFailures: 0"),
			[]string{"spec.outlierDetection: set at least one of"}},
		{"ejection time not a Gateway API duration", breaker("baseEjectionTime: 1m", "baseEjectionTime: 0.5s"),
			[]string{`spec.outlierDetection.baseEjectionTime: "0.5s": want a Gateway API duration such as 10s, 500ms or 1m30s`}},
		{"ejection time under 1s", breaker("baseEjectionTime: 1m", "baseEjectionTime: 500ms"),
			[]string{"spec.outlierDetection.baseEjectionTime: 500ms: want 1s to 1h"}},
		{"ejection time 0s", breaker("baseEjectionTime: 1m", "baseEjectionTime: 0s"),
			[]string{"spec.outlierDetection.baseEjectionTime: 0s: want 1s to 1h"}},
		{"ejection time over 1h", breaker("baseEjectionTime: 1m", "baseEjectionTime: 61m"),
			[]string{"spec.outlierDetection.baseEjectionTime: 1h1m0s: want 1s to 1h"}},
		{"max ejection percent 0", breaker("maxEjectionPercent: 100", "maxEjectionPercent: 0"),
			[]string{"spec.outlierDetection.maxEjectionPercent: 0: want 1 to 100"}},
		{"max ejection percent 101", breaker("maxEjectionPercent: 100", "maxEjectionPercent: 101"),
			[]string{"spec.outlierDetection.maxEjectionPercent: 101: want 1 to 100"}},
		{"max ejection percent not whole", breaker("maxEjectionPercent: 100", "maxEjectionPercent: 12.5"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.outlierDetection.maxEjectionPercent"}},
		{"negative max ejection percent", breaker("maxEjectionPercent: 100", "maxEjectionPercent: -50"),
			[]string{"spec.outlierDetection.maxEjectionPercent: must not be negative, got -50"}},
		{"negative max requests", breaker("maxRequests: 100", "maxRequests: -1"),
			[]string{"spec.maxRequests: must not be negative, got -1"}},
		{"negative counts", mustReplace(t, mustReplace(t, breaker("consecutive5xx: 5", "consecutive5xx: -5"),
			"consecutiveGatewayErrors: 3", "consecutiveGatewayErrors: -3"), "consecutiveConnectFailures: 2", "consecutiveConnectFailures: -2"),
			[]string{"spec.outlierDetection.consecutive5xx: must not be negative, got -5",
				"spec.outlierDetection.consecutiveGatewayErrors: must not be negative, got -3",
				"spec.outlierDetection.consecutiveConnectFailures: must not be negative, got -2"}},
		{"max requests too large", breaker("maxRequests: 100", "maxRequests: 4294967296"),
			[]string{"circuitbreakerpolicy demo/catalog-breaker", "spec.maxRequests"}},
		{"breaker target kind", breaker("kind: Service,", "kind: Deployment,"),
			[]string{`spec.targetRef.kind: "Deployment": want Service`}},
		{"breaker target group", breaker("{kind: Service,", "{group: apps, kind: Service,"),
			[]string{`spec.targetRef.group: "apps": a Service is in the core group, ""`}},
		{"breaker no target", breaker("  targetRef: {kind: Service, name: catalog}\n", ""),
			[]string{`spec.targetRef.kind: "": want Service`}},
		{"breaker target name", breaker("name: catalog}", "name: Catalog_1}"),
			[]string{"spec.targetRef.name"}},
		{"breaker unknown field", breaker("consecutive5xx: 5", "consecutiveErrors: 5"),
			[]string{`unknown field "spec.outlierDetection.consecutiveErrors"`}},
		{"breaker other version", breaker("weft.dev/v1alpha1", "weft.dev/v1"),
			[]string{`apiVersion: "weft.dev/v1": weft reads CircuitBreakerPolicy as weft.dev/v1alpha1`}},
		// RateLimitPolicy.
		{"requests per second missing", limit("  requestsPerSecond: 100\n", ""),
			[]string{"ratelimitpolicy demo/catalog-limit", "spec.requestsPerSecond: must be set (1 to 1000000)"}},
		{"requests per second missing, burst omitted", limit("  requestsPerSecond: 100\n  burst: 200\n", ""),
			[]string{"spec.requestsPerSecond: must be set (1 to 1000000)"}},
		{"requests per second 0", limit("requestsPerSecond: 100", "requestsPerSecond: 0"),
			[]string{"spec.requestsPerSecond: 0: want 1 to 1000000"}},
		{"requests per second 0, burst omitted", limit("  requestsPerSecond: 100\n  burst: 200\n", "  requestsPerSecond: 0\n"),
			[]string{"spec.requestsPerSecond: 0: want 1 to 1000000", "spec.burst: 0: want 1 to 1000000"}},
		{"negative requests per second", limit("requestsPerSecond: 100", "requestsPerSecond: -100"),
			[]string{"spec.requestsPerSecond: must not be negative, got -100"}},
		{"requests per second too big", limit("requestsPerSecond: 100", "requestsPerSecond: 1000001"),
			[]string{"spec.requestsPerSecond: 1000001: want 1 to 1000000"}},
		{"requests per second past int32", limit("requestsPerSecond: 100", "requestsPerSecond: 4294967296"),
			[]string{"ratelimitpolicy demo/catalog-limit", "spec.requestsPerSecond"}},
		{"requests per second not whole", limit("requestsPerSecond: 100", "requestsPerSecond: 0.5"),
			[]string{"ratelimitpolicy demo/catalog-limit", "spec.requestsPerSecond"}},
		{"requests per second a string", limit("requestsPerSecond: 100", `requestsPerSecond: "100/s"`),
			[]string{"ratelimitpolicy demo/catalog-limit", "spec.requestsPerSecond"}},
		{"burst 0", limit("burst: 200", "burst: 0"),
			[]string{"spec.burst: 0: want 1 to 1000000"}},
		{"negative burst", limit("burst: 200", "burst: -1"),
			[]string{"spec.burst: must not be negative, got -1"}},
		{"burst too big", limit("burst: 200", "burst: 2000000"),
			[]string{"spec.burst: 2000000: want 1 to 1000000"}},
		{"limit target kind", limit("kind: Service,", "kind: Deployment,"),
			[]string{`spec.targetRef.kind: "Deployment": want Service`}},
		{"limit target kind omitted", limit("{kind: Service, name: catalog}", "{name: catalog}"),
			[]string{`spec.targetRef.kind: "": want Service`}},
		{"limit target group", limit("{kind: Service,", "{group: gateway.networking.k8s.io, kind: Service,"),
			[]string{`spec.targetRef.group: "gateway.networking.k8s.io": a Service is in the core group, ""`}},
		{"limit no target", limit("  targetRef: {kind: Service, name: catalog}\n", ""),
			[]string{`spec.targetRef.kind: "": want Service`}},
		{"limit target name", limit("name: catalog}", "name: Catalog_1}"),
			[]string{"spec.targetRef.name"}},
		{"limit target namespace", limit("name: catalog}", "name: catalog, namespace: shop}"),
			[]string{`unknown field "spec.targetRef.namespace"`}},
		{"limit unknown field", limit("burst: 200", "maxBurst: 200"),
			[]string{"ratelimitpolicy demo/catalog-limit", `unknown field "spec.maxBurst"`}},
		{"limit other version", limit("weft.dev/v1alpha1", "weft.dev/v1beta1"),
			[]string{`apiVersion: "weft.dev/v1beta1": weft reads RateLimitPolicy as weft.dev/v1alpha1`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOneInvalid(t, tc.doc, tc.want)
		})
	}
}
