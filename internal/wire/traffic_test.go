package wire

import (
	"strings"
	"testing"
	"time"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

func validTraffic() *model.TrafficPolicy {
	return &model.TrafficPolicy{
		Retry: &model.RetryPolicy{Ref: model.Ref{Namespace: "demo", Name: "r"}, Service: "catalog", RetryOn: []string{"5xx", "unavailable"}, Attempts: 2,
			PerTryTimeout: 500 * time.Millisecond, BackoffBase: 25 * time.Millisecond, BackoffMax: 250 * time.Millisecond,
			Budget: model.RetryBudget{Ratio: 0.2, MinPerSecond: 10, Window: 10 * time.Second}},
		Fault: &model.FaultPolicy{Ref: model.Ref{Namespace: "demo", Name: "f"}, Service: "catalog", Headers: []model.ValueMatch{{Name: "x-chaos", Value: "on"}},
			Delay: 2 * time.Second, DelayPercent: 10, AbortPercent: 5.5, AbortHTTPStatus: 503, AbortGRPCCode: 14},
		Breaker: &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "catalog", MaxRequests: 100,
			MaxConnections: 10, MaxPendingRequests: 50, MaxRequestsPerConnection: 1000,
			Outlier: &model.OutlierDetection{Consecutive5xx: 5, ConsecutiveConnectFailures: 2, BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}},
	}
}

func TestTrafficRoundTrip(t *testing.T) {
	connectionsOnly := &model.TrafficPolicy{Breaker: &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "audit",
		MaxConnections: 2, MaxPendingRequests: 1}}
	perConnectionOnly := &model.TrafficPolicy{Breaker: &model.CircuitBreakerPolicy{Ref: model.Ref{Namespace: "demo", Name: "b"}, Service: "stock",
		MaxRequestsPerConnection: 1}}
	for _, tp := range []*model.TrafficPolicy{nil, validTraffic(), {Fault: validTraffic().Fault}, connectionsOnly, perConnectionOnly} {
		got, err := TrafficFromProto(TrafficToProto(tp))
		if err != nil {
			t.Fatalf("TrafficFromProto: %v", err)
		}
		if !got.Equal(tp) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, tp)
		}
	}
}

func TestTrafficFromProtoRefuses(t *testing.T) {
	tests := []struct {
		desc    string
		change  func(p *meshv1.TrafficPolicy)
		wantErr string
	}{
		{"unknown condition", func(p *meshv1.TrafficPolicy) { p.Retry.RetryOn = []string{"sometimes"} }, "spec.retryOn[0]"},
		{"no attempts", func(p *meshv1.TrafficPolicy) { p.Retry.Attempts = 0 }, "spec.attempts"},
		{"huge duration", func(p *meshv1.TrafficPolicy) { p.Retry.PerTryTimeoutMs = 1 << 62 }, "per_try_timeout_ms"},
		{"percent over 100", func(p *meshv1.TrafficPolicy) { p.Fault.AbortPercent = 101 }, "spec.abort.percent"},
		{"bad status", func(p *meshv1.TrafficPolicy) { p.Fault.AbortHttpStatus = 42 }, "spec.abort.httpStatus"},
		{"ejection percent", func(p *meshv1.TrafficPolicy) { p.Breaker.Outlier.MaxEjectionPercent = 0 }, "maxEjectionPercent"},
		{"breaker with nothing", func(p *meshv1.TrafficPolicy) {
			p.Breaker.MaxRequests, p.Breaker.MaxConnections, p.Breaker.MaxRequestsPerConnection, p.Breaker.Outlier = 0, 0, 0, nil
		}, "set maxRequests or outlierDetection"},
		{"queue with no bound", func(p *meshv1.TrafficPolicy) { p.Breaker.MaxRequests, p.Breaker.MaxConnections = 0, 0 }, "spec.maxPendingRequests"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := TrafficToProto(validTraffic()).GetPolicy()
			tc.change(p)
			got, err := TrafficFromProto(&meshv1.TrafficUpdate{Policy: p})
			if err == nil || got != nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("TrafficFromProto = %+v, %v; want error with %q", got, err, tc.wantErr)
			}
		})
	}
	if _, err := TrafficFromProto(nil); err == nil {
		t.Error("a missing update was accepted")
	}
}
