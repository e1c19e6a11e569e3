package proxy

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the proxy's Prometheus metrics. Each Proxy has its own
// registry, so several in one process (tests) do not collide.
type metrics struct {
	registry *prometheus.Registry
	// authz counts inbound authorization decisions. Labels stay bounded:
	// policies and identities are the mesh's objects, not its requests.
	authz *prometheus.CounterVec
	// retries counts retries by outcome: retried, or refused by the
	// budget, the deadline or a body too long to replay.
	retries *prometheus.CounterVec
	// faults counts injected delays and aborts.
	faults *prometheus.CounterVec
	// circuitOpen counts requests and connections refused by a circuit
	// breaker, by reason (openRequests, openConnections, openPending: three
	// values, so the label stays bounded); ejections, endpoints ejected by
	// outlier detection.
	circuitOpen, ejections *prometheus.CounterVec
	// timeouts counts requests a route's timeout ended.
	timeouts *prometheus.CounterVec
	// rateLimited counts inbound requests and tunnels a rate limit refused.
	rateLimited *prometheus.CounterVec
	// mirrors counts requests mirrored, by the service they were sent to.
	mirrors *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_inbound_authz_decisions_total",
			Help: "Inbound requests and connections checked against the workload's authorization policies, by decision, deciding policy and source identity.",
		}, []string{"decision", "policy", "source_identity"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outbound_retries_total",
			Help: "Retries of outbound requests by destination service and outcome: retried, budget_exhausted, deadline, not_replayable.",
		}, []string{"service", "outcome"}),
		faults: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outbound_faults_total",
			Help: "Faults injected into outbound requests by destination service and fault: delay or abort.",
		}, []string{"service", "fault"}),
		circuitOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outbound_circuit_open_total",
			Help: "Outbound requests and connections refused by the destination's circuit breaker, by destination service and reason: requests (maxRequests in flight), connections (maxConnections open and busy), pending (maxPendingRequests waiting already).",
		}, []string{"service", "reason"}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outbound_ejections_total",
			Help: "Endpoints ejected by outlier detection, by destination service.",
		}, []string{"service"}),
		timeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_outbound_timeouts_total",
			Help: "Outbound requests ended by their route's request timeout, by destination service.",
		}, []string{"service"}),
	}
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_inbound_rate_limited_total",
		Help: "Inbound requests and connections refused by the workload's rate limit, by policy.",
	}, []string{"policy"})
	m.mirrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "weft_outbound_mirrored_total",
		Help: "Outbound requests copied to a route's mirror service, by that service.",
	}, []string{"service"})
	m.registry.MustRegister(m.authz, m.retries, m.faults, m.circuitOpen, m.ejections, m.timeouts, m.rateLimited, m.mirrors, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Metrics serves the proxy's metrics in the Prometheus text format.
func (p *Proxy) Metrics() http.Handler {
	return promhttp.HandlerFor(p.metrics.registry, promhttp.HandlerOpts{ErrorLog: p.httpLog})
}
