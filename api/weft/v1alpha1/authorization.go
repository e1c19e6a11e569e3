package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// AuthorizationPolicy allows or denies inbound traffic to the workloads it
// selects in its namespace.
type AuthorizationPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              AuthorizationPolicySpec `json:"spec"`
}

// AuthorizationPolicySpec selects workloads by exactly one of TargetRef and
// Selector.
type AuthorizationPolicySpec struct {
	TargetRef *PolicyTargetRef  `json:"targetRef,omitempty"`
	Selector  *WorkloadSelector `json:"selector,omitempty"`
	// Action is Allow or Deny; Allow if empty.
	Action string `json:"action,omitempty"`
	// Rules each match some traffic; a request matched by any rule is
	// allowed (or denied).
	Rules []AuthorizationRule `json:"rules,omitempty"`
}

// PolicyTargetRef names the workloads' Service or service account.
type PolicyTargetRef struct {
	// Kind is Service or ServiceAccount.
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// WorkloadSelector selects workloads by label. It has no matchExpressions,
// unlike a Kubernetes LabelSelector: a Service's selector cannot express
// them either, and one selector language is easier to reason about.
type WorkloadSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// AuthorizationRule matches traffic by every field it sets.
type AuthorizationRule struct {
	From    []AuthorizationSource `json:"from,omitempty"`
	Ports   []int32               `json:"ports,omitempty"`
	Methods []string              `json:"methods,omitempty"`
	Paths   []PathMatch           `json:"paths,omitempty"`
	// Headers maps a header name to an RE2 expression its value must match
	// whole.
	Headers map[string]string `json:"headers,omitempty"`
}

// AuthorizationSource is a calling identity; "*" in a field matches any.
type AuthorizationSource struct {
	ServiceAccount string `json:"serviceAccount"`
	// Namespace is the policy's own if empty.
	Namespace string `json:"namespace,omitempty"`
}

// PathMatch matches a request's path.
type PathMatch struct {
	// Type is Exact, PathPrefix or RegularExpression; PathPrefix if empty.
	Type  string `json:"type,omitempty"`
	Value string `json:"value"`
}
