package manifest

import (
	"fmt"
	"slices"
	"time"

	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

// Traffic policies: weft's RetryPolicy, FaultPolicy, CircuitBreakerPolicy
// and RateLimitPolicy, attached to a Service of their namespace. Fields
// left out take the defaults below here, so the model never sees an unset
// attempt count, budget, ejection time or burst.

// RetryPolicy defaults.
const (
	defaultRetryAttempts   = 2
	defaultBackoffBase     = 25 * time.Millisecond
	defaultBackoffMax      = 250 * time.Millisecond
	defaultBudgetRatio     = 0.2
	defaultBudgetMinPerSec = 10
	defaultBudgetWindow    = 10 * time.Second
)

// CircuitBreakerPolicy defaults, of its outlier detection.
const (
	defaultBaseEjectionTime   = 30 * time.Second
	defaultMaxEjectionPercent = 50
)

// maxGRPCCode is the highest gRPC status code, UNAUTHENTICATED.
const maxGRPCCode = 16

// RetryPolicyFromV1alpha1 converts and validates a weft RetryPolicy.
func RetryPolicyFromV1alpha1(p *weftv1alpha1.RetryPolicy) (*model.RetryPolicy, error) {
	var fe model.FieldErrors
	s := p.Spec
	out := &model.RetryPolicy{
		Ref:         model.Ref{Namespace: namespaceOf(p.Namespace), Name: p.Name},
		Service:     serviceTarget(&fe, s.TargetRef),
		Attempts:    defaultRetryAttempts,
		BackoffBase: defaultBackoffBase,
		BackoffMax:  defaultBackoffMax,
		Budget:      model.RetryBudget{Ratio: defaultBudgetRatio, MinPerSecond: defaultBudgetMinPerSec, Window: defaultBudgetWindow},
	}
	for i, c := range s.RetryOn {
		if slices.Contains(out.RetryOn, c) {
			fe.Add(fmt.Sprintf("spec.retryOn[%d]", i), "%q is given twice", c)
		}
		out.RetryOn = append(out.RetryOn, c)
	}
	if a := s.Attempts; a != nil {
		// The model bounds attempts; only what would wrap around is
		// refused here.
		if *a < 0 {
			fe.Add("spec.attempts", "must not be negative, got %d", *a)
		} else {
			out.Attempts = uint32(*a)
		}
	}
	out.PerTryTimeout = optionalDuration(&fe, "spec.perTryTimeout", s.PerTryTimeout, 0)
	if b := s.Backoff; b != nil {
		out.BackoffBase = optionalDuration(&fe, "spec.backoff.base", b.Base, defaultBackoffBase)
		out.BackoffMax = optionalDuration(&fe, "spec.backoff.max", b.Max, defaultBackoffMax)
	}
	if b := s.Budget; b != nil {
		if b.Ratio != nil {
			out.Budget.Ratio = *b.Ratio
		}
		if m := b.MinPerSecond; m != nil {
			if *m < 0 {
				fe.Add("spec.budget.minPerSecond", "must not be negative, got %d", *m)
			} else {
				out.Budget.MinPerSecond = uint32(*m)
			}
		}
		out.Budget.Window = optionalDuration(&fe, "spec.budget.window", b.Window, defaultBudgetWindow)
	}
	return checked(fe, out)
}

// FaultPolicyFromV1alpha1 converts and validates a weft FaultPolicy.
func FaultPolicyFromV1alpha1(p *weftv1alpha1.FaultPolicy) (*model.FaultPolicy, error) {
	var fe model.FieldErrors
	s := p.Spec
	out := &model.FaultPolicy{
		Ref:     model.Ref{Namespace: namespaceOf(p.Namespace), Name: p.Name},
		Service: serviceTarget(&fe, s.TargetRef),
	}
	if m := s.Match; m != nil {
		seen := map[string]bool{}
		for i, h := range m.Headers {
			f := fmt.Sprintf("spec.match.headers[%d]", i)
			checkHeaderName(&fe, f+".name", h.Name, seen)
			out.Headers = append(out.Headers, valueMatch(&fe, f, h.Name, h.Value, h.Type))
		}
	}
	if d := s.Delay; d != nil {
		if d.FixedDelay == "" {
			fe.Add("spec.delay.fixedDelay", "must be set")
		} else {
			out.Delay = gatewayDuration(&fe, "spec.delay.fixedDelay", gwv1.Duration(d.FixedDelay))
		}
		out.DelayPercent = percent(&fe, "spec.delay.percent", d.Percent)
	}
	if a := s.Abort; a != nil {
		switch {
		case a.HTTPStatus == 0:
			fe.Add("spec.abort.httpStatus", "must be set")
		case a.HTTPStatus < 200 || a.HTTPStatus > 599:
			fe.Add("spec.abort.httpStatus", "%d: want 200 to 599", a.HTTPStatus)
		default:
			out.AbortHTTPStatus = uint32(a.HTTPStatus)
		}
		if g := a.GRPCStatus; g != nil {
			if *g < 1 || *g > maxGRPCCode {
				fe.Add("spec.abort.grpcStatus", "%d: want a gRPC code, 1 to %d (0, OK, is no fault)", *g, maxGRPCCode)
			} else {
				out.AbortGRPCCode = uint32(*g)
			}
		}
		out.AbortPercent = percent(&fe, "spec.abort.percent", a.Percent)
	}
	if s.Delay == nil && s.Abort == nil {
		fe.Add("spec", "set a delay, an abort or both")
	}
	return checked(fe, out)
}

// CircuitBreakerPolicyFromV1alpha1 converts and validates a weft
// CircuitBreakerPolicy.
func CircuitBreakerPolicyFromV1alpha1(p *weftv1alpha1.CircuitBreakerPolicy) (*model.CircuitBreakerPolicy, error) {
	var fe model.FieldErrors
	s := p.Spec
	out := &model.CircuitBreakerPolicy{
		Ref:                      model.Ref{Namespace: namespaceOf(p.Namespace), Name: p.Name},
		Service:                  serviceTarget(&fe, s.TargetRef),
		MaxRequests:              nonNegative(&fe, "spec.maxRequests", s.MaxRequests),
		MaxConnections:           nonNegative(&fe, "spec.maxConnections", s.MaxConnections),
		MaxPendingRequests:       nonNegative(&fe, "spec.maxPendingRequests", s.MaxPendingRequests),
		MaxRequestsPerConnection: nonNegative(&fe, "spec.maxRequestsPerConnection", s.MaxRequestsPerConnection),
	}
	if o := s.OutlierDetection; o != nil {
		const f = "spec.outlierDetection"
		out.Outlier = &model.OutlierDetection{
			Consecutive5xx:             nonNegative(&fe, f+".consecutive5xx", o.Consecutive5xx),
			ConsecutiveGatewayErrors:   nonNegative(&fe, f+".consecutiveGatewayErrors", o.ConsecutiveGatewayErrors),
			ConsecutiveConnectFailures: nonNegative(&fe, f+".consecutiveConnectFailures", o.ConsecutiveConnectFailures),
			BaseEjection:               optionalDuration(&fe, f+".baseEjectionTime", o.BaseEjectionTime, defaultBaseEjectionTime),
			MaxEjectionPercent:         defaultMaxEjectionPercent,
		}
		if m := o.MaxEjectionPercent; m != nil {
			// The model bounds the percent; 0 and over 100 are its to refuse.
			out.Outlier.MaxEjectionPercent = nonNegative(&fe, f+".maxEjectionPercent", *m)
		}
	}
	return checked(fe, out)
}

// RateLimitPolicyFromV1alpha1 converts and validates a weft
// RateLimitPolicy. Burst defaults to the rate, a bucket holding one
// second's requests.
func RateLimitPolicyFromV1alpha1(p *weftv1alpha1.RateLimitPolicy) (*model.RateLimitPolicy, error) {
	var fe model.FieldErrors
	s := p.Spec
	out := &model.RateLimitPolicy{
		Ref:     model.Ref{Namespace: namespaceOf(p.Namespace), Name: p.Name},
		Service: serviceTarget(&fe, s.TargetRef),
	}
	// The model bounds the rate and the burst; only what would wrap
	// around is refused here.
	if r := s.RequestsPerSecond; r == nil {
		fe.Add("spec.requestsPerSecond", "must be set (1 to 1000000)")
	} else {
		out.RequestsPerSecond = nonNegative(&fe, "spec.requestsPerSecond", *r)
	}
	out.Burst = out.RequestsPerSecond
	if b := s.Burst; b != nil {
		out.Burst = nonNegative(&fe, "spec.burst", *b)
	}
	return checked(fe, out)
}

// nonNegative reads a count the model bounds, refusing only what would
// wrap around.
func nonNegative(fe *model.FieldErrors, field string, v int32) uint32 {
	if v < 0 {
		fe.Add(field, "must not be negative, got %d", v)
		return 0
	}
	return uint32(v)
}

// serviceTarget reads a traffic policy's targetRef: a Service of the
// policy's namespace, in the core group.
func serviceTarget(fe *model.FieldErrors, t weftv1alpha1.ServiceTargetRef) string {
	switch {
	case t.Kind != KindService:
		fe.Add("spec.targetRef.kind", "%q: want Service", t.Kind)
	case !coreGroup(t.Group):
		fe.Add("spec.targetRef.group", `%q: a Service is in the core group, ""`, t.Group)
	}
	return t.Name
}

// optionalDuration reads a Gateway API duration, def when it is omitted.
func optionalDuration(fe *model.FieldErrors, field string, d weftv1alpha1.Duration, def time.Duration) time.Duration {
	if d == "" {
		return def
	}
	return gatewayDuration(fe, field, gwv1.Duration(d))
}

// percent reads a share of requests, which must be given.
func percent(fe *model.FieldErrors, field string, p *float64) float64 {
	if p == nil {
		fe.Add(field, "must be set (0 to 100)")
		return 0
	}
	return *p
}
