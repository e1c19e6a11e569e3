// Package fault holds the demo services' fault switches: an added latency
// (with jitter) and an error rate, settable from flags at start and changed at
// runtime through the control endpoint POST /_demo/faults.
//
// An Injector is applied as HTTP middleware, as gRPC interceptors, or called
// directly (the audit TCP server). The package knows nothing of the mesh and
// serves nothing itself; it depends only on the standard library and gRPC.
package fault
