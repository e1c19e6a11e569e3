// Package detect tells HTTP/1, HTTP/2 (prior knowledge) and anything else
// apart from the first bytes of a connection, and hands the connection on
// with those bytes put back.
//
// Detection gives up after a short timeout and calls the connection opaque
// TCP, so protocols where the server speaks first never stall.
//
// It is a leaf: it must not import control-plane, discovery, source or
// Kubernetes packages, nor the rest of the proxy.
package detect
