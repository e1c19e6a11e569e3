// Package balance picks the endpoint for each request among those serving
// a service port. Balancers sit behind one small interface and are chosen
// by name from a registry, so adding one (peak-EWMA is next) touches no
// caller.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages; it sees only model.Endpoint.
package balance
