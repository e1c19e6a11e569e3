package smi

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// TrafficTarget allows its sources to reach the workloads running as its
// destination service account, on the routes its rules name.
type TrafficTarget struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              TrafficTargetSpec `json:"spec"`
}

// TrafficTargetSpec is a TrafficTarget's destination, sources and rules.
type TrafficTargetSpec struct {
	Destination TrafficTargetDestination `json:"destination"`
	Sources     []IdentityBindingSubject `json:"sources,omitempty"`
	Rules       []TrafficTargetRule      `json:"rules,omitempty"`
}

// IdentityBindingSubject is a service account.
type IdentityBindingSubject struct {
	// Kind is ServiceAccount, the only kind SMI defines.
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Namespace is the TrafficTarget's own if empty.
	Namespace string `json:"namespace,omitempty"`
}

// TrafficTargetDestination is the service account whose workloads the
// TrafficTarget opens. It is a type apart from the sources' only so that
// a port on a source is an unknown field rather than silently ignored.
type TrafficTargetDestination struct {
	IdentityBindingSubject `json:",inline"`
	// Port limits a v1alpha2 destination to one port; v1alpha3 moved ports
	// to TCPRoute and has no such field.
	Port *int32 `json:"port,omitempty"`
}

// TrafficTargetRule names an HTTPRouteGroup or a TCPRoute in the
// TrafficTarget's namespace.
type TrafficTargetRule struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
	// Matches picks named matches of an HTTPRouteGroup; all if empty.
	Matches []string `json:"matches,omitempty"`
}
