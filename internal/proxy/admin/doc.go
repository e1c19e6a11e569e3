// Package admin serves the proxy's admin API: liveness, readiness and a
// dump of the config in force. It knows the proxy only through the small
// interface it needs.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package admin
