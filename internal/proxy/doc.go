// Package proxy is weft's data plane: the Proxy owns the inbound and
// outbound listeners of one workload and carries its traffic according to
// the *model.ProxyConfig last applied.
//
// Outbound, per connection: accept on 127.0.0.1:LocalPort, or, in
// transparent mode, a connection the init step's iptables rules
// redirected (its original destination a Service's cluster IP; anything
// else passes through untouched) -> protocol (the service port's, or
// detected) -> HTTP requests are routed and balanced one by one and
// forwarded over pooled HTTP/2 to the peer proxy; opaque TCP and HTTP/1
// upgrades get a tunnel each, on a connection of its own. Inbound: accept
// HTTP/2 (and HTTP/1.1 tunnels) from peer proxies -> check the target port
// is declared -> authorize -> forward to the app on AppAddress with the
// port's protocol. Every request on either
// side is counted, timed, traced and offered to tap (telemetry.go).
//
// Parts live in subpackages: detect, balance, pool, tunnel, meshheader,
// match, authz, tap, trace, iptables, control, admin. None of them, nor
// this package, may import control-plane, discovery, source or
// Kubernetes packages: the proxy runs beside every workload and links
// only what it needs.
package proxy
