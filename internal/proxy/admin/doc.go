// Package admin serves the proxy's admin API: liveness, readiness, a
// dump of the config in force, metrics, and the app's probes that the
// injector moved onto the admin port (see internal/appprobe). It knows
// the proxy only through the small interface it needs.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package admin
