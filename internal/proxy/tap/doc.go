// Package tap carries live request metadata from a proxy to whoever taps
// it: each request the proxy finishes becomes an Event (method, authority,
// path, status, latency, identities, TLS; never bodies or header values
// beyond those), published to a Hub that fans it out to subscribers, each
// with its own filter and a bounded buffer. A slow subscriber loses events
// (counted, and said in the stream), never the proxy's time: Publish does
// not block and costs one atomic load when nobody taps.
//
// Who may tap is decided by the caller of Serve (the proxy serves it only
// to the control plane's identity over mTLS); this package does not
// authenticate. It is a leaf: it must not import anything of weft but the
// model, and never control-plane, discovery, source or Kubernetes packages.
package tap
