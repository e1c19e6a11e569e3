// Package match compiles the request matchers the proxy's routing and
// authorization share: paths (exact, whole-segment prefix, RE2 over the
// whole path) and header or query values.
//
// It depends on the model alone and must not import the control plane,
// the discovery API or Kubernetes packages.
package match
