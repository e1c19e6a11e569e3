// Package wire converts between weft's mesh model (internal/model) and the
// protobuf types of the proxy <-> control-plane API (api/mesh/v1).
//
// Both ends of the API use it: the control plane's discovery and
// registration servers, and the proxy's client. What comes from the wire
// is untrusted, so every conversion from protobuf validates and names the
// offending field; conversions to protobuf cannot fail.
//
// It must import only the model and the generated API (which brings gRPC's
// generated stubs with it): no servers, no sources, no Kubernetes
// packages. The proxy links it.
package wire
