// Package control is the proxy's side of the proxy <-> control-plane API:
// the Discovery stream that keeps the proxy's config current, and the
// Registration lease of a workload that no manifest declares.
//
// The proxy must keep serving when the control plane is away, so the
// client keeps the last config through disconnections and reconnects on
// its own; nothing here ever hands the proxy an emptied config because a
// connection broke.
//
// It is linked into every proxy, so it must stay small: it must not import
// internal/discovery, internal/registry, sources or any Kubernetes
// package — only the API, internal/wire and internal/model.
package control
