package wire

import (
	"errors"
	"fmt"
	"slices"
	"time"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// TrafficToProto converts a service's traffic policy; nil (no policy
// attaches to the service) is an update with no policy.
func TrafficToProto(t *model.TrafficPolicy) *meshv1.TrafficUpdate {
	if t == nil {
		return &meshv1.TrafficUpdate{}
	}
	out := &meshv1.TrafficPolicy{}
	if r := t.Retry; r != nil {
		out.Retry = &meshv1.RetryPolicy{
			Ref: RefToProto(r.Ref), Service: r.Service, RetryOn: slices.Clone(r.RetryOn), Attempts: r.Attempts,
			PerTryTimeoutMs: ms(r.PerTryTimeout), BackoffBaseMs: ms(r.BackoffBase), BackoffMaxMs: ms(r.BackoffMax),
			BudgetRatio: r.Budget.Ratio, BudgetMinPerSecond: r.Budget.MinPerSecond, BudgetWindowMs: ms(r.Budget.Window),
		}
	}
	if f := t.Fault; f != nil {
		out.Fault = &meshv1.FaultPolicy{
			Ref: RefToProto(f.Ref), Service: f.Service, Headers: valueMatchesToProto(f.Headers), DelayMs: ms(f.Delay),
			DelayPercent: f.DelayPercent, AbortPercent: f.AbortPercent, AbortHttpStatus: f.AbortHTTPStatus, AbortGrpcCode: f.AbortGRPCCode,
		}
	}
	if b := t.Breaker; b != nil {
		out.Breaker = &meshv1.CircuitBreakerPolicy{Ref: RefToProto(b.Ref), Service: b.Service, MaxRequests: b.MaxRequests,
			MaxConnections: b.MaxConnections, MaxPendingRequests: b.MaxPendingRequests, MaxRequestsPerConnection: b.MaxRequestsPerConnection}
		if o := b.Outlier; o != nil {
			out.Breaker.Outlier = &meshv1.OutlierDetection{Consecutive_5Xx: o.Consecutive5xx, ConsecutiveGatewayErrors: o.ConsecutiveGatewayErrors,
				ConsecutiveConnectFailures: o.ConsecutiveConnectFailures, BaseEjectionMs: ms(o.BaseEjection), MaxEjectionPercent: o.MaxEjectionPercent}
		}
	}
	return &meshv1.TrafficUpdate{Policy: out}
}

func ms(d time.Duration) uint64 { return uint64(d / time.Millisecond) }

// TrafficFromProto converts and validates a traffic policy update; nil
// means no policy attaches to the service. A policy that does not
// validate whole is refused.
func TrafficFromProto(u *meshv1.TrafficUpdate) (*model.TrafficPolicy, error) {
	if u == nil {
		return nil, errors.New("traffic: must be set")
	}
	p := u.GetPolicy()
	if p == nil {
		return nil, nil
	}
	f := &fields{prefix: "traffic"}
	dur := func(field string, v uint64) time.Duration {
		if v > uint64(maxRouteTimeout/time.Millisecond) {
			f.add(field, "longer than %s", maxRouteTimeout)
			return 0
		}
		return time.Duration(v) * time.Millisecond
	}
	out := &model.TrafficPolicy{}
	if r := p.GetRetry(); r != nil {
		out.Retry = &model.RetryPolicy{
			Ref: RefFromProto(r.GetRef()), Service: r.GetService(), RetryOn: slices.Clone(r.GetRetryOn()), Attempts: r.GetAttempts(),
			PerTryTimeout: dur("retry.per_try_timeout_ms", r.GetPerTryTimeoutMs()),
			BackoffBase:   dur("retry.backoff_base_ms", r.GetBackoffBaseMs()), BackoffMax: dur("retry.backoff_max_ms", r.GetBackoffMaxMs()),
			Budget: model.RetryBudget{Ratio: r.GetBudgetRatio(), MinPerSecond: r.GetBudgetMinPerSecond(), Window: dur("retry.budget_window_ms", r.GetBudgetWindowMs())},
		}
	}
	if fp := p.GetFault(); fp != nil {
		out.Fault = &model.FaultPolicy{
			Ref: RefFromProto(fp.GetRef()), Service: fp.GetService(), Headers: valueMatchesFromProto(fp.GetHeaders()),
			Delay: dur("fault.delay_ms", fp.GetDelayMs()), DelayPercent: fp.GetDelayPercent(),
			AbortPercent: fp.GetAbortPercent(), AbortHTTPStatus: fp.GetAbortHttpStatus(), AbortGRPCCode: fp.GetAbortGrpcCode(),
		}
	}
	if b := p.GetBreaker(); b != nil {
		out.Breaker = &model.CircuitBreakerPolicy{Ref: RefFromProto(b.GetRef()), Service: b.GetService(), MaxRequests: b.GetMaxRequests(),
			MaxConnections: b.GetMaxConnections(), MaxPendingRequests: b.GetMaxPendingRequests(), MaxRequestsPerConnection: b.GetMaxRequestsPerConnection()}
		if o := b.GetOutlier(); o != nil {
			out.Breaker.Outlier = &model.OutlierDetection{Consecutive5xx: o.GetConsecutive_5Xx(), ConsecutiveGatewayErrors: o.GetConsecutiveGatewayErrors(),
				ConsecutiveConnectFailures: o.GetConsecutiveConnectFailures(), BaseEjection: dur("breaker.outlier.base_ejection_ms", o.GetBaseEjectionMs()),
				MaxEjectionPercent: o.GetMaxEjectionPercent()}
		}
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("traffic: %w", err)
	}
	return out, nil
}
