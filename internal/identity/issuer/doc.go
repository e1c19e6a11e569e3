// Package issuer is the control plane's side of workload identity on the
// wire: the Identity gRPC service that signs CSRs for callers who prove
// who they are (a join token, or their current SVID), and the gRPC
// interceptors that make every other control-plane call carry a verified
// SVID.
//
// It belongs to the control plane: the proxy must never import it.
package issuer
