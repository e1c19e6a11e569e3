// Package discovery serves each proxy the part of the mesh model it needs,
// over the Discovery gRPC stream of api/mesh/v1.
//
// It is in two halves, kept apart on purpose. Diff is a pure function from
// what a stream has sent and a model snapshot to the next response; the
// tests of what a proxy gets go there. Server does the streaming: it
// tracks subscriptions, learns which streams a new snapshot concerns, and
// lets each stream catch up at its own pace, coalescing snapshots while it
// is busy sending.
//
// It runs in the control plane only. It must not import the proxy
// (internal/proxy/...), sources or Kubernetes packages; the proxy must not
// import it.
package discovery
