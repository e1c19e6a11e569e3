// Package app is the demo application that `weft up --demo` runs behind the
// mesh: web (HTTP/1.1), catalog (HTTP/1.1 as v1, h2c as v2), stock (gRPC)
// and audit (a server-speaks-first TCP line protocol).
//
// Each service is a plain program that knows nothing of the mesh: it serves
// on the listener it is given and calls its upstreams at the addresses it is
// configured with, which under `weft up --demo` are its sidecar's outbound
// listeners on loopback. Every service applies a fault.Injector and serves
// its control endpoint (fault.ControlPath), on its own port for HTTP services
// and through ServeControl for the others.
//
// The services record no traces, but they forward the trace headers (W3C
// and B3) of the request they serve onto the calls they make to serve it,
// as those specifications ask of any application, so that the mesh's
// spans link up into one trace (see tracecontext.go).
//
// It must not import any part of weft outside internal/demo and api/demo.
package app
