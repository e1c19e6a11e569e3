// Package kube is Kubernetes mode's source: it watches an API server with
// client-go shared informers (Namespaces, Services, EndpointSlices, Pods,
// ServiceAccounts, and the route and policy kinds of Gateway API, SMI and
// weft that the server serves) and
// keeps the model.Store in step with what it sees, under its own name, as
// the files source does for a manifest directory. Both convert objects
// with internal/manifest, so a manifest means the same in both modes.
//
// Namespaces opt in with the label weft.dev/inject=enabled, which is also
// what the injection webhook selects; a namespace holding a meshed Pod (one
// with the weft-proxy sidecar, injected or written by hand) is in the mesh
// too. Objects elsewhere are not read: workloads outside the mesh keep
// working, unseen.
//
// A meshed Pod with an IP is a workload; a Service's endpoints are the
// meshed Pods its EndpointSlices list as ready (model.Service.Members), so
// the cluster's readiness, termination and readiness gates decide, not
// weft. Ready endpoints that are no meshed Pod, and service accounts that
// Pods or authorization policies name but do not exist, are reported as
// problems.
//
// It must not import the proxy's packages, discovery or the control plane;
// the control plane wires it.
package kube
