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
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		authz: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_inbound_authz_decisions_total",
			Help: "Inbound requests and connections checked against the workload's authorization policies, by decision, deciding policy and source identity.",
		}, []string{"decision", "policy", "source_identity"}),
	}
	m.registry.MustRegister(m.authz, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Metrics serves the proxy's metrics in the Prometheus text format.
func (p *Proxy) Metrics() http.Handler {
	return promhttp.HandlerFor(p.metrics.registry, promhttp.HandlerOpts{ErrorLog: p.httpLog})
}
