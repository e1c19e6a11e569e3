// Package manifest decodes and validates Kubernetes-style YAML manifests
// (apiVersion/kind/metadata/spec) into mesh model objects. Universal mode
// reads them from files; Kubernetes mode converts the same kinds from the
// API server, so a manifest means the same thing in both.
//
// It imports the model and the versioned API types; it must not import
// sources, servers or the proxy.
package manifest
