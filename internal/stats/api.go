package stats

import "time"

// The JSON documents of the control plane's admin API GET /api/v1/stats
// and GET /api/v1/stats/history. `weft stat` and the dashboard read them;
// docs/observability.md shows them. Times are RFC 3339, durations Go
// duration strings ("30s"), latencies milliseconds, rates per second.

// Summary is GET /api/v1/stats?window=30s: every row's signals over the
// window that ends at the newest sample.
type Summary struct {
	// Window is the window asked for, e.g. "30s".
	Window string `json:"window"`
	// Interval is how often the proxies are scraped, e.g. "5s".
	Interval string `json:"interval"`
	// From and To are the times of the two samples the window runs
	// between: To is the newest, From the one nearest to To minus the
	// window (the oldest kept, if the window reaches further back). Counts
	// are the increase between them, rates that divided by Seconds. Both
	// are absent until there are two samples.
	From    time.Time `json:"from,omitzero"`
	To      time.Time `json:"to,omitzero"`
	Seconds float64   `json:"seconds"`
	// LastScrape is when the newest scrape started; absent before the
	// first.
	LastScrape time.Time `json:"lastScrape,omitzero"`
	// Proxies says how the newest scrape went.
	Proxies Scrapes `json:"proxies"`
	// The rows, each list sorted by name.
	Services  []ServiceStats  `json:"services"`
	Routes    []RouteStats    `json:"routes"`
	Workloads []WorkloadStats `json:"workloads"`
	Edges     []EdgeStats     `json:"edges"`
}

// Scrapes is how the newest scrape of the proxies went.
type Scrapes struct {
	// Targets is the number of proxies with an admin address in the model.
	Targets int `json:"targets"`
	// Scraped answered; Failed did not, each with why.
	Scraped int             `json:"scraped"`
	Failed  []ScrapeFailure `json:"failed"`
}

// ScrapeFailure is a proxy whose metrics could not be read.
type ScrapeFailure struct {
	Workload string `json:"workload"`
	Address  string `json:"address"`
	Error    string `json:"error"`
}

// Signals are the golden signals of one row over a window.
type Signals struct {
	// Requests finished in the window (HTTP requests and gRPC calls), and
	// those of them that succeeded: not a 5xx, not a gRPC error status,
	// and answered at all.
	Requests  int64 `json:"requests"`
	Successes int64 `json:"successes"`
	// SuccessRate is Successes/Requests, 0 to 1; null without requests.
	SuccessRate *float64 `json:"successRate"`
	// RPS is Requests per second of the window.
	RPS float64 `json:"rps"`
	// LatencyMs are percentiles of the time from a request's arrival at
	// the proxy to its response's headers; null without requests.
	LatencyMs *Latency `json:"latencyMs"`
	// TCP is about the connections the proxies accepted; routes have none
	// (connections are not routed, requests are).
	TCP *TCP `json:"tcp,omitempty"`
}

// Latency are latency percentiles in milliseconds, from the proxies'
// histogram buckets (0.1 ms to 10 s), interpolated within a bucket; a
// percentile beyond the last bucket shows as its bound, 10000.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
}

// TCP are the connections of a row: for a service or an edge those the
// callers' apps opened to their proxies' outbound ports for the service
// (one per HTTP connection of the app, one per opaque TCP stream), for a
// workload those its proxy's inbound port accepted (pooled HTTP/2
// connections from other proxies, plaintext clients).
type TCP struct {
	// Open at the end of the window: opened minus closed since each proxy
	// started.
	Open int64 `json:"open"`
	// Opened and Closed in the window.
	Opened int64 `json:"opened"`
	Closed int64 `json:"closed"`
	// Bytes per second received from the connecting side and sent to it.
	ReceivedBytesPerSec float64 `json:"receivedBytesPerSec"`
	SentBytesPerSec     float64 `json:"sentBytesPerSec"`
}

// ServiceStats is a destination service ("namespace/name") as its callers
// saw it, from the outbound metrics of every caller. A route that splits a
// service's calls among backend services counts them under the backend.
type ServiceStats struct {
	Name string `json:"name"`
	Signals
}

// RouteStats is a route ("HTTPRoute demo/catalog-canary"), from the
// outbound metrics of the calls its rules took.
type RouteStats struct {
	Name string `json:"name"`
	// Backends are the services the route sent calls to in the window.
	Backends []string `json:"backends"`
	Signals
}

// WorkloadStats is a workload ("namespace/name") as its own proxy saw the
// calls it took, from the proxy's inbound metrics.
type WorkloadStats struct {
	Name string `json:"name"`
	Signals
}

// EdgeStats is one workload's calls to one service, from the caller's
// outbound metrics.
type EdgeStats struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// MTLS says whether every request of the window went over mTLS; null
	// without requests (TCP connections are not labelled with it).
	MTLS *bool `json:"mtls"`
	Signals
}

// History is GET /api/v1/stats/history?service=namespace/name: one point
// per sample kept (up to ten minutes), oldest first.
type History struct {
	Service  string  `json:"service"`
	Interval string  `json:"interval"`
	Points   []Point `json:"points"`
}

// Point is a service's signals between one sample and the one before it.
type Point struct {
	// Time is the sample's; Seconds the time since the previous sample,
	// which Requests and RPS are over.
	Time     time.Time `json:"time"`
	Seconds  float64   `json:"seconds"`
	Requests int64     `json:"requests"`
	RPS      float64   `json:"rps"`
	// SuccessRate and LatencyMs are null without requests.
	SuccessRate *float64 `json:"successRate"`
	LatencyMs   *Latency `json:"latencyMs"`
}
