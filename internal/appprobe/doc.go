// Package appprobe is the contract between the injector and the proxy
// for the app's HTTP probes. A kubelet probe of an app port arrives from
// outside the mesh, in plaintext, which a workload in strict mTLS mode
// refuses. So the injector points each HTTP probe at the proxy's admin
// port, on a path this package names, and gives the proxy what the probe
// was; the proxy sends it to the app itself, on loopback, and answers
// with the app's status.
//
// It imports only the standard library: both the injector and the proxy,
// which must not import each other, use it.
package appprobe
