// Package v1alpha1 holds the Go types of weft's own manifest kinds
// (apiVersion weft.dev/v1alpha1: Workload, AuthorizationPolicy,
// RetryPolicy, FaultPolicy, CircuitBreakerPolicy, RateLimitPolicy), as
// users write them in YAML and, in Kubernetes mode, as custom resources.
//
// These are the versioned user-facing types; internal/model is what the
// mesh runs. This package imports only Kubernetes' metav1.
package v1alpha1

// GroupVersion is the apiVersion of every kind in this package.
const GroupVersion = "weft.dev/v1alpha1"
