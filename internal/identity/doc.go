// Package identity is the client side of weft's workload identity, shared by
// the proxy and the control plane: SPIFFE IDs of the form
// spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, X.509-SVID
// verification against a trust bundle, root pins for join tokens, the
// unverified reading of a join token, and Source, which keeps a workload's
// key in memory, obtains and renews its SVID through a Certifier, and hands
// out TLS configs that always use the current certificate and bundle.
//
// The proxy links this package, so it stays small: it must not import
// Kubernetes, the control plane's servers, sources or discovery, the proxy's
// packages, or the CA (internal/identity/ca). Private keys never leave the
// process, are never written, and log as redacted.
package identity
