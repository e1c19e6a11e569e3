// Package smi holds Go types for the Service Mesh Interface kinds weft
// reads: TrafficTarget (access.smi-spec.io v1alpha3 and v1alpha2),
// HTTPRouteGroup and TCPRoute (specs.smi-spec.io v1alpha4 and v1alpha3),
// and TrafficSplit (split.smi-spec.io v1alpha4, v1alpha3 and v1alpha2).
//
// They are weft's own copies rather than the SMI SDK's, so that the
// manifest decoder's strict field checks see exactly the fields weft
// honours, and so one struct can serve the versions that share a shape:
// where versions differ (a TrafficTarget's destination port, a TCPRoute's
// or a TrafficSplit's matches) the manifest converter checks the object's
// apiVersion. This package imports only Kubernetes' metav1.
package smi

// The apiVersions weft reads.
const (
	AccessV1alpha3 = "access.smi-spec.io/v1alpha3"
	AccessV1alpha2 = "access.smi-spec.io/v1alpha2"
	SpecsV1alpha4  = "specs.smi-spec.io/v1alpha4"
	SpecsV1alpha3  = "specs.smi-spec.io/v1alpha3"
	SplitV1alpha4  = "split.smi-spec.io/v1alpha4"
	SplitV1alpha3  = "split.smi-spec.io/v1alpha3"
	SplitV1alpha2  = "split.smi-spec.io/v1alpha2"
)

// SpecsGroup is the API group of HTTPRouteGroup and TCPRoute, which a
// TrafficSplit's matches may name.
const SpecsGroup = "specs.smi-spec.io"
