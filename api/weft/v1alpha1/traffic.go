package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// Duration is a Gateway API duration (GEP-2257): up to four numbers, each
// with a unit of h, m, s or ms, such as 10s, 500ms or 1m30s.
type Duration string

// ServiceTargetRef names the Service of the policy's namespace that a
// traffic policy attaches to, as a Gateway API LocalPolicyTargetReference.
type ServiceTargetRef struct {
	// Group is "" (or core), Kubernetes' core group; "" if omitted.
	Group string `json:"group,omitempty"`
	// Kind is Service.
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// RetryPolicy retries, in the calling proxy, the failed requests to a
// Service, within a budget that keeps retries from multiplying an outage.
type RetryPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RetryPolicySpec `json:"spec"`
}

// RetryPolicySpec says which failures to retry, how often and how fast.
type RetryPolicySpec struct {
	TargetRef ServiceTargetRef `json:"targetRef"`
	// RetryOn are the conditions that make a request worth retrying: 5xx,
	// gateway-error, reset, and for gRPC unavailable, resource-exhausted and
	// cancelled.
	RetryOn []string `json:"retryOn"`
	// Attempts is the most retries of one request, 1 to 10; 2 if omitted.
	Attempts *int32 `json:"attempts,omitempty"`
	// PerTryTimeout bounds each try; none if omitted or 0s.
	PerTryTimeout Duration `json:"perTryTimeout,omitempty"`
	// Backoff spaces the tries of one request.
	Backoff *RetryBackoff `json:"backoff,omitempty"`
	// Budget bounds retries across requests.
	Budget *RetryBudget `json:"budget,omitempty"`
}

// RetryBackoff is an exponential, jittered backoff between tries.
type RetryBackoff struct {
	// Base is the first wait; 25ms if omitted.
	Base Duration `json:"base,omitempty"`
	// Max bounds every wait; 250ms if omitted.
	Max Duration `json:"max,omitempty"`
}

// RetryBudget allows, over the last Window, retries of up to Ratio of the
// requests plus MinPerSecond for each second of the window.
type RetryBudget struct {
	// Ratio is 0 to 1; 0.2 if omitted. 0 leaves MinPerSecond alone.
	Ratio *float64 `json:"ratio,omitempty"`
	// MinPerSecond is allowed whatever the ratio; 10 if omitted.
	MinPerSecond *int32 `json:"minPerSecond,omitempty"`
	// Window is at least 1s; 10s if omitted.
	Window Duration `json:"window,omitempty"`
}

// FaultPolicy injects faults, in the calling proxy, into a share of the
// requests to a Service, to test how callers cope.
type FaultPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              FaultPolicySpec `json:"spec"`
}

// FaultPolicySpec sets a delay, an abort or both; a request may be
// delayed and then aborted.
type FaultPolicySpec struct {
	TargetRef ServiceTargetRef `json:"targetRef"`
	// Match, when set, limits faults to the requests it matches.
	Match *FaultMatch `json:"match,omitempty"`
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
}

// FaultMatch matches requests by every header match it has.
type FaultMatch struct {
	Headers []HeaderMatch `json:"headers,omitempty"`
}

// HeaderMatch matches a request header, as Gateway API's HTTPHeaderMatch.
type HeaderMatch struct {
	// Type is Exact or RegularExpression (RE2, matching the whole value);
	// Exact if omitted.
	Type *string `json:"type,omitempty"`
	// Name is case-insensitive.
	Name  string `json:"name"`
	Value string `json:"value"`
}

// FaultDelay holds a share of the requests back before they are sent.
type FaultDelay struct {
	FixedDelay Duration `json:"fixedDelay"`
	// Percent of the requests, 0 to 100, are delayed.
	Percent *float64 `json:"percent"`
}

// FaultAbort answers a share of the requests at once, without sending
// them.
type FaultAbort struct {
	// HTTPStatus is the answer's status, 200 to 599.
	HTTPStatus int32 `json:"httpStatus"`
	// GRPCStatus is the status code of gRPC calls' answers, 1 to 16; if
	// omitted, the code gRPC maps HTTPStatus to.
	GRPCStatus *int32 `json:"grpcStatus,omitempty"`
	// Percent of the requests, 0 to 100, are aborted.
	Percent *float64 `json:"percent"`
}

// CircuitBreakerPolicy protects a Service from its callers, and them from
// its failing endpoints: each calling proxy bounds what it has in flight
// to the Service and stops sending to endpoints that fail in a row.
type CircuitBreakerPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              CircuitBreakerPolicySpec `json:"spec"`
}

// CircuitBreakerPolicySpec sets bounds on what each calling proxy has in
// flight to the Service and on its connections to the Service's
// endpoints, outlier detection, or both. Every bound is one calling
// proxy's, and none when omitted or 0.
type CircuitBreakerPolicySpec struct {
	TargetRef ServiceTargetRef `json:"targetRef"`
	// MaxRequests bounds the requests, WebSockets and opaque TCP
	// connections in flight to the Service from one calling proxy; over
	// it the proxy queues them (MaxPendingRequests) or answers 503 at
	// once.
	MaxRequests int32 `json:"maxRequests,omitempty"`
	// MaxConnections bounds the connections from one calling proxy to all
	// the Service's endpoints together. HTTP and gRPC requests share
	// connections, many at once on each (HTTP/2 between proxies); each
	// opaque TCP connection and WebSocket is a connection of its own.
	MaxConnections int32 `json:"maxConnections,omitempty"`
	// MaxPendingRequests bounds the requests and connections that wait,
	// in one calling proxy, for a place under MaxRequests or
	// MaxConnections; those over it are answered 503 at once. No queue if
	// omitted or 0: everything over a bound is answered at once. Needs
	// MaxRequests or MaxConnections.
	MaxPendingRequests int32 `json:"maxPendingRequests,omitempty"`
	// MaxRequestsPerConnection retires a connection to an endpoint once
	// it has carried that many requests: it finishes them and closes, and
	// the next request opens a new one.
	MaxRequestsPerConnection int32 `json:"maxRequestsPerConnection,omitempty"`
	// OutlierDetection ejects endpoints that fail in a row.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
}

// OutlierDetection ejects an endpoint, in each calling proxy, after
// consecutive failures of a kind. Each count is optional, 0 or omitted
// turning that kind off, and at least one must be set.
type OutlierDetection struct {
	// Consecutive5xx counts answers 500 to 599, and gRPC calls that end
	// UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN or DATA_LOSS.
	Consecutive5xx int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveGatewayErrors counts answers 502, 503 and 504, and gRPC
	// calls that end UNAVAILABLE or DEADLINE_EXCEEDED.
	ConsecutiveGatewayErrors int32 `json:"consecutiveGatewayErrors,omitempty"`
	// ConsecutiveConnectFailures counts connections to the endpoint that
	// could not be made.
	ConsecutiveConnectFailures int32 `json:"consecutiveConnectFailures,omitempty"`
	// BaseEjectionTime, times the number of times the endpoint has been
	// ejected, is how long an ejection lasts; 1s to 1h, 30s if omitted.
	BaseEjectionTime Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent of a Service's endpoints, 1 to 100, may be
	// ejected at once; 50 if omitted.
	MaxEjectionPercent *int32 `json:"maxEjectionPercent,omitempty"`
}

// RateLimitPolicy bounds the requests each workload of a Service takes:
// the workload's own proxy keeps a token bucket for all its callers
// together (local rate limiting, not a mesh-wide count) and refuses what
// is over it.
type RateLimitPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RateLimitPolicySpec `json:"spec"`
}

// RateLimitPolicySpec sets each workload's token bucket.
type RateLimitPolicySpec struct {
	TargetRef ServiceTargetRef `json:"targetRef"`
	// RequestsPerSecond refills the bucket: the sustained rate each
	// workload takes, 1 to 1000000. Required.
	RequestsPerSecond *int32 `json:"requestsPerSecond"`
	// Burst is the bucket's size: how many requests a workload takes at
	// once after a quiet spell, 1 to 1000000; RequestsPerSecond if omitted.
	Burst *int32 `json:"burst,omitempty"`
}
