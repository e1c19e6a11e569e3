// Package controlplane assembles weft's control plane: the model store, the
// sources that feed it, the discovery and registration gRPC servers, and
// the admin HTTP API that the CLI reads. It is the one place that knows how
// those parts start and stop together.
//
// The proxy must never import it.
package controlplane
