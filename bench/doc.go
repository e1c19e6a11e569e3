// Command bench is weft's data-plane benchmark suite (`make bench`): the
// same load generator (fortio, h2load, and its own TCP bulk and gRPC
// stream clients) and the same backend (a fortio server and its own TCP
// bulk source and gRPC echo stream) measured directly and through two-hop
// setups in turn — weft-proxy pairs; nginx, HAProxy and Caddy pairs with
// mTLS between the hops; and gostd, Go's standard library alone in weft's
// shape (gostd.go) — each given the same CPU budget. It writes bench/results/<date>.json, the table in
// docs/benchmarks.md between its markers, and docs/images/bench-*.png.
//
// It drives every setup as a user would, through the real binaries and
// their configuration files (bench/nginx, bench/haproxy, bench/caddy,
// bench/gostd), so it imports nothing of weft: no internal package, no
// cmd.
package main
