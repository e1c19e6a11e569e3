// Package proxy is weft's data plane: the Proxy owns the inbound and
// outbound listeners of one workload and carries its traffic according to
// the *model.ProxyConfig last applied.
//
// Outbound, per connection: accept on 127.0.0.1:LocalPort -> protocol
// (the service port's, or detected) -> HTTP requests are balanced one by
// one and forwarded over pooled HTTP/2 to the peer proxy; opaque TCP and
// HTTP/1 upgrades ride one CONNECT stream each. Inbound: accept HTTP/2
// from peer proxies -> check the target port is declared -> forward to
// the app on AppAddress with the port's protocol.
//
// Parts live in subpackages: detect, balance, pool, tunnel, meshheader,
// admin. None of them, nor this package, may import control-plane,
// discovery, source or Kubernetes packages: the proxy runs beside every
// workload and links only what it needs.
package proxy
