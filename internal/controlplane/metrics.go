package controlplane

import (
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"

	"github.com/weftmesh/weft/internal/discovery"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/identity/issuer"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source/files"
)

// metrics are the control plane's own Prometheus metrics, served at the
// admin listener's /metrics. Each control plane has its own registry, so
// several in one process (tests) do not collide. Every label takes a few
// fixed values: the parts report through typed outcomes (discovery.Outcome,
// issuer.Auth, issuer.Outcome), never through names of the mesh's objects.
//
// The parts do not import Prometheus: discovery, the issuer and the files
// source report through hooks, and this file turns what they report into
// metrics. What can be read at any time (model version, rejected routes,
// CA expiry) is read when scraped, so it is never stale.
type metrics struct {
	registry *prometheus.Registry

	proxies     prometheus.Gauge
	connects    *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	pushes      *prometheus.CounterVec
	pushLatency prometheus.Histogram

	certificates *prometheus.CounterVec

	manifestProblems prometheus.Gauge
	manifestSyncs    *prometheus.CounterVec
}

// pushBuckets span 0.1 ms (a push to an idle stream on the same host) to
// 10 s (a proxy far behind on a congested link).
var pushBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

func newMetrics(store *model.Store, authority *ca.CA) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_control_proxies_connected",
			Help: "Proxies with an open discovery stream to this control plane.",
		}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_proxy_connects_total",
			Help: "Discovery streams opened by proxies, by outcome: ok (accepted), refused (the caller may not be the proxy of the workload it named, or the control plane was shutting down), error (a bad first request or a broken stream).",
		}, []string{"outcome"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_proxy_disconnects_total",
			Help: "Accepted discovery streams that ended, by reason: ok (the proxy closed or cancelled it, or the control plane shut down), refused (the proxy may no longer serve its workload), error (a bad request or a broken stream).",
		}, []string{"reason"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_pushes_total",
			Help: "Config updates sent on discovery streams, by kind (full: a stream's first response or a service's whole state; incremental: deltas, the workload, its authorization or the trust bundle) and outcome (sent or error).",
		}, []string{"kind", "outcome"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "weft_control_push_duration_seconds",
			Help:    "Time from the discovery server seeing a new model snapshot to an update carrying its change being sent on a subscribed proxy's stream, once per stream and update; a stream that is behind is measured from the oldest change it had not sent.",
			Buckets: pushBuckets,
		}),
		certificates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_certificates_issued_total",
			Help: "Workload certificate requests (Identity.Certify), by how the caller authenticated (join_token, svid: a renewal, none) and outcome (issued, refused, error). The control plane's own certificate is not counted.",
		}, []string{"auth", "outcome"}),
		manifestProblems: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "weft_control_manifest_problems",
			Help: "Problems the last read of the manifest directory found: files and objects that do not decode or validate, and objects the model refused (their last good version stays in force). Routes not admitted are in weft_control_routes_rejected.",
		}),
		manifestSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "weft_control_manifest_syncs_total",
			Help: "Full reads of the manifest directory (on a change and every resync interval), by result: ok, problems (some file or object is wrong), error (the directory could not be read).",
		}, []string{"result"}),
	}
	modelVersion := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_control_model_version",
		Help: "Version of the newest model snapshot; it rises by one with every change of the mesh the control plane applies.",
	}, func() float64 { return float64(store.Snapshot().Version) })
	routesRejected := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "weft_control_routes_rejected",
		Help: "Routes the model does not admit now (an unknown backend, or a match another route has); each keeps its last admitted version, if any, in force.",
	}, func() float64 { return float64(len(store.Snapshot().RouteRejections())) })
	m.registry.MustRegister(m.proxies, m.connects, m.disconnects, m.pushes, m.pushLatency, m.certificates,
		m.manifestProblems, m.manifestSyncs, modelVersion, routesRejected, caCollector{authority},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Every label value shows from the start, at zero, so a rate over
	// the first occurrence is not lost and dashboards need no absent().
	for _, o := range []discovery.Outcome{discovery.OutcomeOK, discovery.OutcomeRefused, discovery.OutcomeError} {
		m.connects.WithLabelValues(string(o))
		m.disconnects.WithLabelValues(string(o))
	}
	for _, kind := range []string{"full", "incremental"} {
		for _, outcome := range []string{"sent", "error"} {
			m.pushes.WithLabelValues(kind, outcome)
		}
	}
	for _, a := range []issuer.Auth{issuer.AuthJoinToken, issuer.AuthServiceAccountToken, issuer.AuthSVID, issuer.AuthNone} {
		for _, o := range []issuer.Outcome{issuer.Issued, issuer.Refused, issuer.Failed} {
			m.certificates.WithLabelValues(string(a), string(o))
		}
	}
	for _, r := range []string{"ok", "problems", "error"} {
		m.manifestSyncs.WithLabelValues(r)
	}
	return m
}

// handler serves the metrics in the Prometheus exposition formats.
func (m *metrics) handler(log *slog.Logger) http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)})
}

// discoveryObserver counts what the discovery server reports.
type discoveryObserver struct{ m *metrics }

var _ discovery.Observer = discoveryObserver{}

func (o discoveryObserver) StreamStarted(out discovery.Outcome) {
	o.m.connects.WithLabelValues(string(out)).Inc()
	if out == discovery.OutcomeOK {
		o.m.proxies.Inc()
	}
}

func (o discoveryObserver) StreamEnded(out discovery.Outcome) {
	o.m.disconnects.WithLabelValues(string(out)).Inc()
	o.m.proxies.Dec()
}

func (o discoveryObserver) Pushed(p discovery.Push) {
	kind, outcome := "incremental", "sent"
	if p.Full {
		kind = "full"
	}
	if p.Err != nil {
		outcome = "error"
	}
	o.m.pushes.WithLabelValues(kind, outcome).Inc()
	if p.FromSnapshot {
		o.m.pushLatency.Observe(p.Lag.Seconds())
	}
}

// refusedStreams counts, as refused connects, the discovery streams the
// identity interceptors turn away for want of a valid SVID: those never
// reach the discovery server, so its observer cannot count them. It must
// run outside those interceptors. (Discovery itself refuses with
// PERMISSION_DENIED, never UNAUTHENTICATED, so nothing is counted twice.)
func (m *metrics) refusedStreams() grpc.ServerOption {
	return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		err := h(srv, ss)
		if info.FullMethod == meshv1.Discovery_Stream_FullMethodName && status.Code(err) == codes.Unauthenticated {
			m.connects.WithLabelValues(string(discovery.OutcomeRefused)).Inc()
		}
		return err
	})
}

// certified counts one Certify call.
func (m *metrics) certified(a issuer.Auth, o issuer.Outcome) {
	m.certificates.WithLabelValues(string(a), string(o)).Inc()
}

// synced records one read of the manifest directory.
func (m *metrics) synced(r files.SyncResult) {
	result := "ok"
	switch {
	case r.Err != nil:
		result = "error"
	case r.Problems > 0:
		result = "problems"
	}
	m.manifestSyncs.WithLabelValues(result).Inc()
	m.manifestProblems.Set(float64(r.Problems))
}

// caCollector reports when the CA's certificates expire, read at each
// scrape so a rotation or a re-issued intermediate shows at once.
type caCollector struct{ ca *ca.CA }

var (
	rootExpiryDesc = prometheus.NewDesc("weft_control_ca_root_expiry_timestamp_seconds",
		"When each root of the trust bundle expires, in Unix seconds; active=\"true\" is the root new certificates chain to, active=\"false\" the other root during a rotation.",
		[]string{"active"}, nil)
	intermediateExpiryDesc = prometheus.NewDesc("weft_control_ca_intermediate_expiry_timestamp_seconds",
		"When the intermediate that signs workload certificates expires, in Unix seconds (the control plane issues a new one when a third of its life is left).",
		nil, nil)
)

func (c caCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rootExpiryDesc
	ch <- intermediateExpiryDesc
}

func (c caCollector) Collect(ch chan<- prometheus.Metric) {
	active := c.ca.ActiveRoot()
	// A bundle holds the active root and at most one other; should it
	// ever hold more, the soonest to expire stands for the others, as it
	// is the one to act on (and a label set must not repeat).
	var other float64
	for _, r := range c.ca.Bundle() {
		t := float64(r.NotAfter.Unix())
		if r.Equal(active) {
			continue
		}
		if other == 0 || t < other {
			other = t
		}
	}
	ch <- prometheus.MustNewConstMetric(rootExpiryDesc, prometheus.GaugeValue, float64(active.NotAfter.Unix()), "true")
	if other != 0 {
		ch <- prometheus.MustNewConstMetric(rootExpiryDesc, prometheus.GaugeValue, other, "false")
	}
	ch <- prometheus.MustNewConstMetric(intermediateExpiryDesc, prometheus.GaugeValue, float64(c.ca.Intermediate().NotAfter.Unix()))
}
