// Package tunnel carries a byte stream (opaque TCP, or an HTTP/1 upgrade
// such as WebSocket) between two weft proxies as one HTTP/2 CONNECT stream,
// and pipes it to a connection at each end with half-close.
//
// It must not import control-plane, discovery, source or Kubernetes
// packages.
package tunnel
