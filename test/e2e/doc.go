// Package e2e starts weft's real binaries on loopback and drives real
// traffic through them. Build with -tags e2e and point WEFT_BIN at the
// directory holding weft and weft-proxy (`make test-e2e` does both).
package e2e
