// Package source holds the places the control plane learns the mesh from:
// files/ (universal mode's manifest directory) and, in Kubernetes mode,
// kube/. Each source turns what it reads into model objects and applies
// them to the model.Store under its own name.
package source
