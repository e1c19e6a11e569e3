// Package authz decides, in the proxy, whether an inbound request or
// connection may reach the workload: it compiles the workload's resolved
// authorization (model.Authz, from the control plane) into matchers and
// evaluates them per request.
//
// It is the data plane's half of authorization and must not import the
// control plane, the discovery API or Kubernetes packages.
package authz
