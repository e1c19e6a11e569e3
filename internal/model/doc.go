// Package model is weft's one internal model of the mesh: services,
// workloads, the endpoints derived from them, and the immutable, versioned
// snapshots the control plane serves to proxies.
//
// It is pure data and validation. It must not import the API wire types,
// Kubernetes packages, sources, servers or the proxy; everything else
// imports it.
package model
