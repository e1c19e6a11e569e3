// Package pool carries proxy-to-proxy traffic: a few multiplexed HTTP/2
// connections per peer proxy, shared by every request and tunnel to it.
// A Group keeps connections of its own instead, under bounds of their own
// (how many at once, how many requests each), for a destination whose
// circuit breaker bounds its connections.
//
// Connections come from a Dialer. Today that is plain TCP (h2c); the
// identity work plugs in a Dialer that returns mTLS connections and
// nothing else here changes.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package pool
