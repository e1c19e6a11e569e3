// Package ca is weft's certificate authority: the root and issuing
// intermediate (self-managed, or provided by the operator in cert-manager's
// layout), CSR signing into X.509-SVIDs, root rotation with a two-root trust
// bundle, and join tokens. A self-managed CA lives in a directory
// (LoadOrCreate) or, for control plane replicas that share one through a
// Kubernetes Secret, in memory (LoadOrCreateFrom and Files; SetPersist
// and Reload carry rotation steps between replicas: the caller reads and
// writes the Secret, so this package needs no Kubernetes client).
//
// Only the control plane and the CLI import it; the proxy must not (it uses
// the client side, internal/identity). It must not import Kubernetes, the
// control plane's servers, sources or discovery, or the proxy's packages.
// Private keys log as redacted and never appear in errors.
package ca
