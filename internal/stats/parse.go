package stats

import (
	"fmt"
	"io"
	"math"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The proxy's series this package reads (internal/proxy/telemetry.go
// defines them; this package reads them as Prometheus would, by name).
const (
	metricRequests    = "weft_requests_total"
	metricResponses   = "weft_responses_total"
	metricLatency     = "weft_response_latency_seconds"
	metricConnsOpened = "weft_tcp_connections_opened_total"
	metricConnsClosed = "weft_tcp_connections_closed_total"
	metricBytes       = "weft_tcp_bytes_total"
	// metricStart is the process collector's: a new value means a new
	// process, whose counters started again from zero.
	metricStart = "process_start_time_seconds"
)

// Directions of the proxy's series.
const (
	inbound  = "inbound"
	outbound = "outbound"
)

// kind is what a series counts.
type kind uint8

const (
	kindRequests kind = iota
	kindTLSRequests
	kindSuccesses
	kindBucket
	kindOpened
	kindClosed
	kindReceived
	kindSent
)

// series is one of a proxy's counters reduced to the labels the rows need.
// Several of the proxy's series (by protocol, status code, peer identity)
// add up into one; within one process their sum only grows, as each does.
type series struct {
	kind      kind
	direction string
	service   string  // destination_service
	route     string  // route rule's route, outbound
	le        float64 // a latency bucket's upper bound
}

// reading is one scrape of one proxy: the cumulative values of its series.
type reading struct {
	// start is the proxy's process start time, 0 when it is not served.
	start  float64
	values map[series]float64
}

func (r *reading) add(s series, v float64) { r.values[s] += v }

// parse reads one proxy's /metrics in the Prometheus text format.
func parse(in io.Reader) (reading, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(in)
	if err != nil {
		return reading{}, fmt.Errorf("parsing metrics: %w", err)
	}
	r := reading{values: map[series]float64{}}
	if ms := fams[metricStart].GetMetric(); len(ms) > 0 {
		r.start = value(ms[0])
	}
	for _, m := range fams[metricRequests].GetMetric() {
		l := labels(m)
		s := series{kind: kindRequests, direction: l["direction"], service: l["destination_service"], route: l["route"]}
		r.add(s, value(m))
		if l["tls"] == "true" {
			s.kind = kindTLSRequests
			r.add(s, value(m))
		}
	}
	for _, m := range fams[metricResponses].GetMetric() {
		l := labels(m)
		if l["classification"] == "success" {
			r.add(series{kind: kindSuccesses, direction: l["direction"], service: l["destination_service"], route: l["route"]}, value(m))
		}
	}
	for _, m := range fams[metricLatency].GetMetric() {
		h := m.GetHistogram()
		if h == nil {
			continue // not served as a histogram: nothing to interpolate
		}
		l := labels(m)
		s := series{kind: kindBucket, direction: l["direction"], service: l["destination_service"], route: l["route"]}
		inf := false
		for _, b := range h.GetBucket() {
			s.le = b.GetUpperBound()
			inf = inf || math.IsInf(s.le, 1)
			r.add(s, bucketCount(b))
		}
		if !inf {
			// The text format has the +Inf bucket; keep the count there
			// whatever produced the families.
			s.le = math.Inf(1)
			r.add(s, sampleCount(h))
		}
	}
	for name, k := range map[string]kind{metricConnsOpened: kindOpened, metricConnsClosed: kindClosed} {
		for _, m := range fams[name].GetMetric() {
			l := labels(m)
			r.add(series{kind: k, direction: l["direction"], service: l["destination_service"]}, value(m))
		}
	}
	for _, m := range fams[metricBytes].GetMetric() {
		l := labels(m)
		k := kindReceived
		switch l["flow"] {
		case "received":
		case "sent":
			k = kindSent
		default:
			continue
		}
		r.add(series{kind: k, direction: l["direction"], service: l["destination_service"]}, value(m))
	}
	return r, nil
}

func labels(m *dto.Metric) map[string]string {
	l := make(map[string]string, len(m.GetLabel()))
	for _, p := range m.GetLabel() {
		l[p.GetName()] = p.GetValue()
	}
	return l
}

// value is a counter's, gauge's or untyped sample's value (a family
// without a TYPE line parses as untyped).
func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}

func bucketCount(b *dto.Bucket) float64 {
	if b.CumulativeCountFloat != nil {
		return b.GetCumulativeCountFloat()
	}
	return float64(b.GetCumulativeCount())
}

func sampleCount(h *dto.Histogram) float64 {
	if h.SampleCountFloat != nil {
		return h.GetSampleCountFloat()
	}
	return float64(h.GetSampleCount())
}
