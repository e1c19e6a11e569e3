// Package up runs a whole mesh on one machine: the control plane in this
// process, a weft-proxy for every workload the manifests declare (started
// and stopped as the manifests change), and any application processes it
// is given (the demo's). Stopping it stops every process it started.
//
// It sits at the top with the CLI; nothing imports it but cmd wiring.
package up
