// Package dashboard is `weft dashboard`: a web UI for people, served from
// assets embedded in the weft binary, that shows the mesh live — the
// service topology with each edge's traffic, a page per service with its
// golden signals over time, its routes and policies, and what is wrong
// with the manifests.
//
// It is a reader of the control plane's admin API and nothing else: every
// number it shows comes from there (GET /api/v1/...), it never changes
// anything (the passthrough refuses all but GET and HEAD), and it works
// offline (no CDN, no external fonts, a Content-Security-Policy of 'self').
// It answers on loopback only, since it has no authentication of its own.
//
// It must not import the proxy (internal/proxy/...) or anything only the
// proxy needs: it runs in the weft binary, and the data plane's binary
// stays small by linking no dashboard.
package dashboard
