// Package registry is the Registration gRPC service: workloads that no
// manifest declares (a proxy started with --register, say on a VM) join
// the mesh and hold their place with a lease they renew.
//
// Registered workloads go into the model Store as the source
// "registration". A lease that lapses removes its workload. With a state
// file, registrations survive a control-plane restart: they come back
// with a fresh full TTL, so proxies have time to renew before anything is
// dropped.
//
// It runs in the control plane only. It must not import the proxy
// (internal/proxy/...), discovery, other sources or Kubernetes packages.
package registry
