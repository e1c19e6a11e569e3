// Package cli is the `weft` command line: the control plane (`weft
// control`), a mesh on one machine (`weft up`), and the operator's
// commands that read a running control plane's admin API.
//
// It is wiring and presentation; the proxy must never import it.
package cli
