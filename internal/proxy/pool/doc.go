// Package pool carries proxy-to-proxy traffic: a few multiplexed HTTP/2
// connections per peer proxy, shared by every request to it, and a
// connection of its own for each tunnel (DialTunnel). A Group keeps
// connections of its own instead, under bounds of their own (how many at
// once, how many requests each), for a destination whose circuit breaker
// bounds its connections; its tunnels count against the same bound.
//
// Connections come from a Dialer: plain TCP (h2c) when none is given, as
// in tests; in weft-proxy the identity's mTLS dialer, which is also a
// TunnelDialer and offers another ALPN protocol for tunnels.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package pool
