// Package balance picks the endpoint for each request among those serving
// a service port. Balancers sit behind one small interface and are chosen
// by name from a registry, so adding one touches no caller. The default,
// p2c, is power of two choices over a peak-EWMA latency estimate times the
// requests in flight; round-robin is the baseline.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages; it sees only model.Endpoint.
package balance
