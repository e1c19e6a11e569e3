package stats

import (
	"bytes"
	"log/slog"
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// fakeProxy counts calls in the series a weft-proxy serves, with the same
// names, labels and buckets (internal/proxy/telemetry.go), in a real
// Prometheus registry, so the tests read the exposition a proxy writes.
type fakeProxy struct {
	workload string
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	response *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	opened   *prometheus.CounterVec
	closed   *prometheus.CounterVec
	bytes    *prometheus.CounterVec
}

var proxyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
	0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10,
}

var peerLabels = []string{"direction", "protocol", "tls", "source_workload", "source_identity",
	"destination_service", "destination_workload", "destination_identity", "route"}

// newFakeProxy starts a proxy process at start (Unix seconds); 0 serves no
// process_start_time_seconds.
func newFakeProxy(workload string, start float64) *fakeProxy {
	p := &fakeProxy{
		workload: workload,
		reg:      prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_requests_total", Help: "h"}, peerLabels),
		response: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_responses_total", Help: "h"},
			append(append([]string{}, peerLabels...), "status_code", "status_class", "grpc_status", "classification")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "weft_response_latency_seconds", Help: "h", Buckets: proxyBuckets},
			[]string{"direction", "protocol", "source_workload", "destination_service", "destination_workload", "route", "classification"}),
		opened: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_connections_opened_total", Help: "h"}, []string{"direction", "destination_service"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_connections_closed_total", Help: "h"}, []string{"direction", "destination_service"}),
		bytes:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "weft_tcp_bytes_total", Help: "h"}, []string{"direction", "destination_service", "flow"}),
	}
	p.reg.MustRegister(p.requests, p.response, p.latency, p.opened, p.closed, p.bytes)
	if start != 0 {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "process_start_time_seconds", Help: "h"})
		g.Set(start)
		p.reg.MustRegister(g)
	}
	return p
}

// call is n requests a proxy carried.
type call struct {
	direction string // outbound (default) or inbound
	service   string // outbound: where they went
	route     string
	plaintext bool
	status    int     // 0: never answered
	latency   float64 // seconds
	grpc      string  // grpc-status, "" for none
	n         int
}

// carry counts calls as the proxy's record does.
func (p *fakeProxy) carry(c call) {
	dir := c.direction
	if dir == "" {
		dir = outbound
	}
	src, svc, dst := p.workload, c.service, ""
	if dir == inbound {
		src, svc, dst = "", "", p.workload
	}
	tls := strconv.FormatBool(!c.plaintext)
	peer := []string{dir, "http1", tls, src, "", svc, dst, "", c.route}
	class := "success"
	if c.status == 0 || c.status >= 500 || c.grpc != "" && c.grpc != "0" {
		class = "failure"
	}
	for range c.n {
		p.requests.WithLabelValues(peer...).Inc()
		if c.status != 0 {
			code := strconv.Itoa(c.status)
			p.response.WithLabelValues(append(append([]string{}, peer...), code, code[:1]+"xx", c.grpc, class)...).Inc()
		}
		p.latency.WithLabelValues(dir, "http1", src, svc, dst, c.route, class).Observe(c.latency)
	}
}

// conns counts connections opened and closed and their bytes.
func (p *fakeProxy) conns(direction, service string, opened, closed, received, sent float64) {
	if direction == inbound {
		service = ""
	}
	p.opened.WithLabelValues(direction, service).Add(opened)
	p.closed.WithLabelValues(direction, service).Add(closed)
	p.bytes.WithLabelValues(direction, service, "received").Add(received)
	p.bytes.WithLabelValues(direction, service, "sent").Add(sent)
}

// text is the proxy's /metrics in the text format.
func (p *fakeProxy) text(t *testing.T) string {
	t.Helper()
	fams, err := p.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// reading is what a scrape of the proxy reads now.
func (p *fakeProxy) reading(t *testing.T) reading {
	t.Helper()
	r, err := parse(bytes.NewReader([]byte(p.text(t))))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var quiet = slog.New(slog.DiscardHandler)
