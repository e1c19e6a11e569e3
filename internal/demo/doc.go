// Package demo is `weft demo`: the command that runs the demo application's
// services and load generator (from internal/demo/app and
// internal/demo/loadgen), and the demo's mesh layout, the manifests and
// processes `weft up --demo` starts.
//
// The services know nothing of the mesh; only the layout does, and only as
// data (YAML bytes and command lines). This package must not import the
// mesh's own packages (model, manifest, proxy, ...): the lead's decoder
// validates what the layout writes.
package demo
