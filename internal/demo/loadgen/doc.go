// Package loadgen is the demo's load generator: it calls one URL at a fixed
// rate with bounded concurrency and logs a one-line summary (requests,
// successes, failures, p50/p99 latency) every few seconds with log/slog.
//
// It only ever calls the URL it is given, and refuses any URL whose host is
// not loopback. It depends on the standard library only.
package loadgen
