package model

import (
	"strings"
	"testing"
	"time"
)

func TestCircuitBreakerPolicyValidation(t *testing.T) {
	ref := Ref{Namespace: "demo", Name: "b"}
	outlier := &OutlierDetection{Consecutive5xx: 5, BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}
	tests := []struct {
		desc string
		p    CircuitBreakerPolicy
		// wantErr are what the error must say; none: the policy is valid.
		wantErr []string
	}{
		{desc: "max requests alone", p: CircuitBreakerPolicy{MaxRequests: 1}},
		{desc: "max connections alone", p: CircuitBreakerPolicy{MaxConnections: 1}},
		{desc: "requests per connection alone", p: CircuitBreakerPolicy{MaxRequestsPerConnection: 1}},
		{desc: "outlier detection alone", p: CircuitBreakerPolicy{Outlier: outlier}},
		{desc: "queue under max requests", p: CircuitBreakerPolicy{MaxRequests: 10, MaxPendingRequests: 100}},
		{desc: "queue under max connections", p: CircuitBreakerPolicy{MaxConnections: 2, MaxPendingRequests: 1}},
		{desc: "everything", p: CircuitBreakerPolicy{MaxRequests: 100, MaxConnections: 10, MaxPendingRequests: 50,
			MaxRequestsPerConnection: 1000, Outlier: outlier}},
		{desc: "nothing", p: CircuitBreakerPolicy{},
			wantErr: []string{"spec: set maxRequests or outlierDetection, or a connection limit: maxConnections, maxRequestsPerConnection"}},
		{desc: "a queue alone", p: CircuitBreakerPolicy{MaxPendingRequests: 10},
			wantErr: []string{"spec: set maxRequests", "spec.maxPendingRequests: 10: requests wait only for maxRequests or maxConnections"}},
		{desc: "a queue with nothing to wait for", p: CircuitBreakerPolicy{MaxPendingRequests: 10, MaxRequestsPerConnection: 5, Outlier: outlier},
			wantErr: []string{"spec.maxPendingRequests: 10: requests wait only for maxRequests or maxConnections"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			p := tc.p
			p.Ref, p.Service = ref, "catalog"
			err := p.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want valid", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() accepted it")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to say %q", err, w)
				}
			}
			// What a proxy checks of what it receives says the same.
			if err := (&TrafficPolicy{Breaker: &p}).Validate(); err == nil {
				t.Error("TrafficPolicy.Validate accepted it")
			}
		})
	}
}

func TestCircuitBreakerPolicyEqual(t *testing.T) {
	base := func() *CircuitBreakerPolicy {
		return &CircuitBreakerPolicy{Ref: Ref{Namespace: "demo", Name: "b"}, Service: "catalog", MaxRequests: 100, MaxConnections: 10,
			MaxPendingRequests: 50, MaxRequestsPerConnection: 1000,
			Outlier: &OutlierDetection{Consecutive5xx: 5, BaseEjection: 30 * time.Second, MaxEjectionPercent: 50}}
	}
	if !base().EqualPolicy(base()) {
		t.Fatal("two equal policies differ")
	}
	for _, change := range []struct {
		field string
		set   func(*CircuitBreakerPolicy)
	}{
		{"maxRequests", func(p *CircuitBreakerPolicy) { p.MaxRequests++ }},
		{"maxConnections", func(p *CircuitBreakerPolicy) { p.MaxConnections++ }},
		{"maxPendingRequests", func(p *CircuitBreakerPolicy) { p.MaxPendingRequests++ }},
		{"maxRequestsPerConnection", func(p *CircuitBreakerPolicy) { p.MaxRequestsPerConnection++ }},
		{"outlierDetection", func(p *CircuitBreakerPolicy) { p.Outlier.Consecutive5xx++ }},
		{"no outlierDetection", func(p *CircuitBreakerPolicy) { p.Outlier = nil }},
	} {
		p := base()
		change.set(p)
		if p.EqualPolicy(base()) || base().EqualPolicy(p) {
			t.Errorf("policies differing in %s are equal", change.field)
		}
	}
}
