// Package stats computes the mesh's golden signals (request rate, success
// rate, latency percentiles, open TCP connections and byte rates) from the
// proxies' own Prometheus metrics, so that `weft stat` and the dashboard
// work without the user running a Prometheus server.
//
// A Scraper reads every proxy's admin GET /metrics every few seconds, as
// Prometheus would, with bounded concurrency and a timeout per proxy. It
// turns each proxy's counters into their increase since that proxy's
// previous scrape (a proxy that restarted starts again from zero, which is
// detected by its process start time or a counter going down), sums the
// increases of all proxies into one sample per scrape, and keeps a bounded
// ring of samples (ten minutes at five seconds by default). Answers are
// computed from the samples in a window: rates from counter increases over
// the time between samples, percentiles from the increases of the latency
// histogram's buckets, interpolated within a bucket as Prometheus'
// histogram_quantile does.
//
// What each row counts:
//
//   - a service: the outbound requests of every caller to it, which is what
//     the clients saw (retries, mirrors and the callee's own view do not
//     count twice);
//   - a route: the outbound requests a route rule took, whatever backend;
//   - a workload: the inbound requests its proxy took;
//   - an edge: the outbound requests of one workload to one service, and
//     whether they went over mTLS.
//
// The package reads proxies only over HTTP, as any Prometheus would, and
// stores only aggregates, so its memory does not grow with the number of
// proxies. It must not import the proxy's packages (internal/proxy/...),
// the control plane that runs it, or the model: the control plane hands it
// the list of targets, and the JSON documents it answers with (Summary,
// History) are the admin API's.
package stats
