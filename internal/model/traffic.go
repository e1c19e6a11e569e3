package model

import (
	"fmt"
	"slices"
	"time"
)

// Traffic policy kinds: weft's own, for what Gateway API and SMI lack.
// Each attaches to a Service of its namespace and governs the mesh's
// calls to it, in the calling proxy.
const (
	KindRetryPolicy          = "RetryPolicy"
	KindFaultPolicy          = "FaultPolicy"
	KindCircuitBreakerPolicy = "CircuitBreakerPolicy"
	KindRateLimitPolicy      = "RateLimitPolicy"
)

// RateLimitPolicy bounds the requests each workload of a Service takes:
// a token bucket in the workload's own proxy (local rate limiting, not a
// mesh-wide count), refilled at RequestsPerSecond and holding Burst.
type RateLimitPolicy struct {
	Ref               Ref
	Service           string
	RequestsPerSecond uint32
	Burst             uint32
}

func (p *RateLimitPolicy) Key() PolicyKey { return PolicyKey{Kind: KindRateLimitPolicy, Ref: p.Ref} }

func (p *RateLimitPolicy) EqualPolicy(o Policy) bool {
	q, ok := o.(*RateLimitPolicy)
	return ok && *p == *q
}

func (p *RateLimitPolicy) Validate() error { return validateAttached(p.Ref, p.Service, p.validateSpec) }

func (p *RateLimitPolicy) validateSpec(fe *FieldErrors) {
	if p.RequestsPerSecond < 1 || p.RequestsPerSecond > 1_000_000 {
		fe.Add("spec.requestsPerSecond", "%d: want 1 to 1000000", p.RequestsPerSecond)
	}
	if p.Burst < 1 || p.Burst > 1_000_000 {
		fe.Add("spec.burst", "%d: want 1 to 1000000", p.Burst)
	}
}

// Conditions a RetryPolicy retries on.
const (
	RetryOn5xx             = "5xx"                // any 5xx answer
	RetryOnGatewayError    = "gateway-error"      // 502, 503, 504
	RetryOnReset           = "reset"              // the connection broke before an answer
	RetryOnUnavailable     = "unavailable"        // gRPC UNAVAILABLE
	RetryOnResourceExhaust = "resource-exhausted" // gRPC RESOURCE_EXHAUSTED
	RetryOnCancelled       = "cancelled"          // gRPC CANCELLED
)

var retryConditions = []string{RetryOn5xx, RetryOnGatewayError, RetryOnReset, RetryOnUnavailable, RetryOnResourceExhaust, RetryOnCancelled}

// RetryPolicy retries the failed requests to a Service, within a budget
// that keeps retries from multiplying an outage: at most Budget.Ratio of
// the requests of the last Budget.Window, plus Budget.MinPerSecond.
type RetryPolicy struct {
	Ref     Ref
	Service string
	RetryOn []string
	// Attempts is the most retries of one request.
	Attempts uint32
	// PerTryTimeout bounds each try; 0 is none (the request's own
	// deadline still holds).
	PerTryTimeout time.Duration
	// Backoff between tries: exponential from Base up to Max, jittered.
	BackoffBase, BackoffMax time.Duration
	Budget                  RetryBudget
}

// RetryBudget bounds retries across requests.
type RetryBudget struct {
	Ratio        float64
	MinPerSecond uint32
	Window       time.Duration
}

// FaultPolicy injects faults into a share of the requests to a Service,
// to test how callers cope.
type FaultPolicy struct {
	Ref     Ref
	Service string
	// Headers, when set, limit faults to requests matching all of them.
	Headers []ValueMatch
	Delay   time.Duration
	// DelayPercent of requests are delayed by Delay.
	DelayPercent float64
	// AbortPercent of requests are answered at once with AbortHTTPStatus,
	// or for gRPC with AbortGRPCCode (when set; else the status mapped
	// from the HTTP one).
	AbortPercent    float64
	AbortHTTPStatus uint32
	AbortGRPCCode   uint32
}

// CircuitBreakerPolicy protects a Service from its callers and them from
// its failing endpoints: each calling proxy bounds what it has in flight
// to the Service's port and the connections it holds to its endpoints,
// and ejects endpoints that fail in a row. Each bound is the calling
// proxy's own (per caller, not mesh-wide), and 0 is no bound.
//
// A connection is what the calling proxy holds open to an endpoint's
// proxy, one TCP (mTLS) connection each:
//   - HTTP/1, HTTP/2 and gRPC requests travel multiplexed, as HTTP/2
//     streams, on a few connections to each endpoint: one normally
//     carries many requests at once;
//   - an opaque TCP connection or an HTTP/1 upgrade (WebSocket) is a
//     connection of its own through the mesh, for as long as it is open,
//     as it is one connection to the app at the far end.
//
// Policies that bound connections (MaxConnections, or
// MaxRequestsPerConnection) give the Service connections of its own in
// each calling proxy, which carry nothing else, so that a bound counts
// exactly the Service's connections.
type CircuitBreakerPolicy struct {
	Ref     Ref
	Service string
	// MaxRequests bounds the requests, upgrades and opaque connections in
	// flight from one proxy.
	MaxRequests uint32
	// MaxConnections bounds the connections from one proxy to all the
	// Service's endpoints together, those being opened included.
	MaxConnections uint32
	// MaxPendingRequests bounds the requests and connections waiting, in
	// one proxy, for a place under MaxRequests or MaxConnections; the
	// rest fail at once. 0 is no queue: every one over a bound fails at
	// once.
	MaxPendingRequests uint32
	// MaxRequestsPerConnection retires a connection after it has carried
	// that many requests: it takes no more, finishes those it has, and
	// closes, and the next request opens a new one.
	MaxRequestsPerConnection uint32
	Outlier                  *OutlierDetection
}

// OutlierDetection ejects an endpoint after consecutive failures of a
// kind (0 turns a kind off) for BaseEjection times the number of times it
// was ejected, never more than MaxEjectionPercent of the endpoints at once.
type OutlierDetection struct {
	Consecutive5xx             uint32
	ConsecutiveGatewayErrors   uint32
	ConsecutiveConnectFailures uint32
	BaseEjection               time.Duration
	MaxEjectionPercent         uint32
}

func (p *CircuitBreakerPolicy) Key() PolicyKey {
	return PolicyKey{Kind: KindCircuitBreakerPolicy, Ref: p.Ref}
}

func (p *CircuitBreakerPolicy) EqualPolicy(o Policy) bool {
	q, ok := o.(*CircuitBreakerPolicy)
	return ok && p.Ref == q.Ref && p.Service == q.Service && p.MaxRequests == q.MaxRequests &&
		p.MaxConnections == q.MaxConnections && p.MaxPendingRequests == q.MaxPendingRequests &&
		p.MaxRequestsPerConnection == q.MaxRequestsPerConnection &&
		(p.Outlier == nil) == (q.Outlier == nil) && (p.Outlier == nil || *p.Outlier == *q.Outlier)
}

// Validate checks a circuit breaker policy; field paths are the manifest's.
func (p *CircuitBreakerPolicy) Validate() error {
	return validateAttached(p.Ref, p.Service, p.validateSpec)
}

func (p *CircuitBreakerPolicy) validateSpec(fe *FieldErrors) {
	if p.MaxRequests == 0 && p.MaxConnections == 0 && p.MaxRequestsPerConnection == 0 && p.Outlier == nil {
		fe.Add("spec", "set maxRequests or outlierDetection, or a connection limit: maxConnections, maxRequestsPerConnection")
	}
	// A queue needs a bound to wait under; without one it would be a
	// setting that silently does nothing.
	if p.MaxPendingRequests > 0 && p.MaxRequests == 0 && p.MaxConnections == 0 {
		fe.Add("spec.maxPendingRequests", "%d: requests wait only for maxRequests or maxConnections; set one of them", p.MaxPendingRequests)
	}
	if o := p.Outlier; o != nil {
		if o.Consecutive5xx == 0 && o.ConsecutiveGatewayErrors == 0 && o.ConsecutiveConnectFailures == 0 {
			fe.Add("spec.outlierDetection", "set at least one of consecutive5xx, consecutiveGatewayErrors, consecutiveConnectFailures")
		}
		if o.BaseEjection < time.Second || o.BaseEjection > time.Hour {
			fe.Add("spec.outlierDetection.baseEjectionTime", "%s: want 1s to 1h", o.BaseEjection)
		}
		if o.MaxEjectionPercent < 1 || o.MaxEjectionPercent > 100 {
			fe.Add("spec.outlierDetection.maxEjectionPercent", "%d: want 1 to 100", o.MaxEjectionPercent)
		}
	}
}

func (p *RetryPolicy) Key() PolicyKey { return PolicyKey{Kind: KindRetryPolicy, Ref: p.Ref} }
func (p *FaultPolicy) Key() PolicyKey { return PolicyKey{Kind: KindFaultPolicy, Ref: p.Ref} }

func (p *RetryPolicy) EqualPolicy(o Policy) bool {
	q, ok := o.(*RetryPolicy)
	return ok && p.Ref == q.Ref && p.Service == q.Service && slices.Equal(p.RetryOn, q.RetryOn) && p.Attempts == q.Attempts &&
		p.PerTryTimeout == q.PerTryTimeout && p.BackoffBase == q.BackoffBase && p.BackoffMax == q.BackoffMax && p.Budget == q.Budget
}

func (p *FaultPolicy) EqualPolicy(o Policy) bool {
	q, ok := o.(*FaultPolicy)
	return ok && p.Ref == q.Ref && p.Service == q.Service && slices.Equal(p.Headers, q.Headers) && p.Delay == q.Delay &&
		p.DelayPercent == q.DelayPercent && p.AbortPercent == q.AbortPercent && p.AbortHTTPStatus == q.AbortHTTPStatus && p.AbortGRPCCode == q.AbortGRPCCode
}

// maxRetryAttempts bounds retries of one request.
const maxRetryAttempts = 10

// Validate checks a retry policy; field paths are the manifest's.
func (p *RetryPolicy) Validate() error { return validateAttached(p.Ref, p.Service, p.validateSpec) }

func (p *RetryPolicy) validateSpec(fe *FieldErrors) {
	if len(p.RetryOn) == 0 {
		fe.Add("spec.retryOn", "name at least one condition (%v)", retryConditions)
	}
	for i, c := range p.RetryOn {
		if !slices.Contains(retryConditions, c) {
			fe.Add(fmt.Sprintf("spec.retryOn[%d]", i), "%q: want one of %v", c, retryConditions)
		}
	}
	if p.Attempts < 1 || p.Attempts > maxRetryAttempts {
		fe.Add("spec.attempts", "%d: want 1 to %d", p.Attempts, maxRetryAttempts)
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"spec.perTryTimeout", p.PerTryTimeout}, {"spec.backoff.base", p.BackoffBase}, {"spec.backoff.max", p.BackoffMax}, {"spec.budget.window", p.Budget.Window}} {
		if d.v < 0 || d.v > time.Hour {
			fe.Add(d.field, "%s: want 0 to 1h", d.v)
		}
	}
	if p.BackoffMax < p.BackoffBase {
		fe.Add("spec.backoff.max", "%s is less than base %s", p.BackoffMax, p.BackoffBase)
	}
	if p.Budget.Ratio < 0 || p.Budget.Ratio > 1 {
		fe.Add("spec.budget.ratio", "%g: want 0 to 1", p.Budget.Ratio)
	}
	if p.Budget.Window < time.Second {
		fe.Add("spec.budget.window", "%s: want at least 1s", p.Budget.Window)
	}
}

// Validate checks a fault policy; field paths are the manifest's.
func (p *FaultPolicy) Validate() error { return validateAttached(p.Ref, p.Service, p.validateSpec) }

func (p *FaultPolicy) validateSpec(fe *FieldErrors) {
	for _, pc := range []struct {
		field string
		v     float64
	}{{"spec.delay.percent", p.DelayPercent}, {"spec.abort.percent", p.AbortPercent}} {
		if pc.v < 0 || pc.v > 100 {
			fe.Add(pc.field, "%g: want 0 to 100", pc.v)
		}
	}
	if p.DelayPercent > 0 && (p.Delay <= 0 || p.Delay > time.Hour) {
		fe.Add("spec.delay.fixedDelay", "%s: want more than 0, at most 1h", p.Delay)
	}
	if p.AbortPercent > 0 {
		if p.AbortHTTPStatus < 200 || p.AbortHTTPStatus > 599 {
			fe.Add("spec.abort.httpStatus", "%d: want 200 to 599", p.AbortHTTPStatus)
		}
		if p.AbortGRPCCode > 16 {
			fe.Add("spec.abort.grpcStatus", "%d: want a gRPC code, 1 to 16", p.AbortGRPCCode)
		}
	}
	if p.DelayPercent == 0 && p.AbortPercent == 0 {
		fe.Add("spec", "set a delay or an abort with a percent above 0")
	}
	validateValueMatches(fe, "spec.match.headers", p.Headers, true)
}

// validateAttached checks a policy attached to a Service: its own name,
// the service's, then its spec.
func validateAttached(ref Ref, service string, spec func(*FieldErrors)) error {
	var fe FieldErrors
	validateMeta(&fe, ref)
	validateName(&fe, "spec.targetRef.name", service)
	spec(&fe)
	return fe.Err()
}

// TrafficPolicy is what the policies attached to one Service ask of its
// callers. At most one policy of each kind is in force for a service: the
// first by name; the rest are reported, not merged.
type TrafficPolicy struct {
	Retry   *RetryPolicy
	Fault   *FaultPolicy
	Breaker *CircuitBreakerPolicy
}

// Equal reports whether two traffic policies are the same.
func (t *TrafficPolicy) Equal(o *TrafficPolicy) bool {
	if t == nil || o == nil {
		return t == o
	}
	return equalOrNil(t.Retry, o.Retry) && equalOrNil(t.Fault, o.Fault) && equalOrNil(t.Breaker, o.Breaker)
}

func equalOrNil[P interface {
	comparable
	Policy
}](a, b P) bool {
	var zero P
	if a == zero || b == zero {
		return a == b
	}
	return a.EqualPolicy(b)
}

// Validate checks both policies, as a proxy does with what it receives.
func (t *TrafficPolicy) Validate() error {
	var fe FieldErrors
	if t.Retry != nil {
		t.Retry.validateSpec(&fe)
	}
	if t.Fault != nil {
		t.Fault.validateSpec(&fe)
	}
	if t.Breaker != nil {
		t.Breaker.validateSpec(&fe)
	}
	return fe.Err()
}

// resolveTraffic picks, among the namespace's policies (sorted by key),
// those attached to service name.
func resolveTraffic(name string, policies []Policy) *TrafficPolicy {
	t := &TrafficPolicy{}
	for _, p := range policies {
		switch p := p.(type) {
		case *RetryPolicy:
			if p.Service == name && t.Retry == nil {
				t.Retry = p
			}
		case *FaultPolicy:
			if p.Service == name && t.Fault == nil {
				t.Fault = p
			}
		case *CircuitBreakerPolicy:
			if p.Service == name && t.Breaker == nil {
				t.Breaker = p
			}
		}
	}
	if t.Retry == nil && t.Fault == nil && t.Breaker == nil {
		return nil
	}
	return t
}
