// Package tunnel carries a byte stream (opaque TCP, or an HTTP/1 upgrade
// such as WebSocket) between two weft proxies, and pipes it to a
// connection at each end with half-close.
//
// A tunnel has a connection of its own: the client proxy sends an HTTP/1.1
// CONNECT naming the target in mesh headers, the peer answers 200, and the
// connection then carries the bytes as they are, in TLS records when the
// connection is mTLS.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package tunnel
