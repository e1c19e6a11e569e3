package smi

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// TrafficSplit divides the requests for its root service between backend
// services by weight.
type TrafficSplit struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficSplitSpec `json:"spec"`
}

// TrafficSplitSpec is a TrafficSplit's root service and backends.
type TrafficSplitSpec struct {
	// Service is the root service: the name clients call.
	Service  string                `json:"service"`
	Backends []TrafficSplitBackend `json:"backends,omitempty"`
	// Matches name HTTPRouteGroups whose requests alone the split applies
	// to; v1alpha3 added them and v1alpha2 has none.
	Matches []TrafficSplitMatch `json:"matches,omitempty"`
}

// TrafficSplitBackend is a service of the split's namespace and its
// weight. Weight is a pointer so that a backend without one, which the
// SMI schema refuses, is an error rather than weight 0.
type TrafficSplitBackend struct {
	Service string `json:"service"`
	Weight  *int   `json:"weight"`
}

// TrafficSplitMatch refers to an HTTPRouteGroup of the split's namespace
// (Kubernetes' TypedLocalObjectReference, as the SMI SDK has it).
type TrafficSplitMatch struct {
	APIGroup *string `json:"apiGroup,omitempty"`
	Kind     string  `json:"kind"`
	Name     string  `json:"name"`
}
