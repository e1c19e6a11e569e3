// Package appprobe is the contract between the injector and the proxy
// for the app's HTTP and TCP probes. A kubelet probe of an app port
// arrives from outside the mesh, in plaintext: a workload in strict mTLS
// mode refuses it, and the proxy accepts every TCP connection, so a TCP
// probe would pass whether the app is up or not. So the injector points
// each such probe at the proxy's admin port, on a path this package
// names, and gives the proxy what the probe was; the proxy sends it to
// the app itself, to the pod's IP as the kubelet would (its own
// connections are never redirected), and answers with the app's status.
//
// It imports only the standard library: both the injector and the proxy,
// which must not import each other, use it.
package appprobe
