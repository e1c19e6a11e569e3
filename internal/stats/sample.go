package stats

import (
	"cmp"
	"maps"
	"math"
	"slices"
	"time"
)

// signals are one row's increases between two samples, or summed over a
// window, and its open connections at a sample.
type signals struct {
	requests, tlsRequests, successes float64
	// buckets are the latency histogram's cumulative counts by upper
	// bound; sums of cumulative counts are cumulative.
	buckets                        map[float64]float64
	opened, closed, received, sent float64
	// open is a level, not an increase: connections open at the sample.
	open float64
	// tcp is set once a connection series was seen for the row.
	tcp bool
}

func (g *signals) add(s series, v float64) {
	switch s.kind {
	case kindRequests:
		g.requests += v
	case kindTLSRequests:
		g.tlsRequests += v
	case kindSuccesses:
		g.successes += v
	case kindBucket:
		if g.buckets == nil {
			g.buckets = map[float64]float64{}
		}
		g.buckets[s.le] += v
	case kindOpened:
		g.opened += v
		g.tcp = true
	case kindClosed:
		g.closed += v
		g.tcp = true
	case kindReceived:
		g.received += v
		g.tcp = true
	case kindSent:
		g.sent += v
		g.tcp = true
	}
}

// merge adds o's increases to g; the open level is not an increase and
// is left alone.
func (g *signals) merge(o *signals) {
	g.requests += o.requests
	g.tlsRequests += o.tlsRequests
	g.successes += o.successes
	for le, c := range o.buckets {
		if g.buckets == nil {
			g.buckets = map[float64]float64{}
		}
		g.buckets[le] += c
	}
	g.opened += o.opened
	g.closed += o.closed
	g.received += o.received
	g.sent += o.sent
	g.tcp = g.tcp || o.tcp
}

// out is the JSON of g over seconds.
func (g *signals) out(seconds float64) Signals {
	// A scrape can land between a proxy counting a request and counting
	// its response, so successes may run one scrape ahead of requests.
	successes := min(g.successes, g.requests)
	o := Signals{Requests: count(g.requests), Successes: count(successes)}
	if seconds > 0 {
		o.RPS = g.requests / seconds
	}
	if g.requests > 0 {
		r := successes / g.requests
		o.SuccessRate = &r
	}
	o.LatencyMs = latency(g.buckets)
	if g.tcp {
		o.TCP = &TCP{Open: max(count(g.open), 0), Opened: count(g.opened), Closed: count(g.closed)}
		if seconds > 0 {
			o.TCP.ReceivedBytesPerSec = g.received / seconds
			o.TCP.SentBytesPerSec = g.sent / seconds
		}
	}
	return o
}

func count(v float64) int64 { return int64(math.Round(v)) }

// latency is p50, p95 and p99 of a histogram in milliseconds; nil when it
// has no observations.
func latency(buckets map[float64]float64) *Latency {
	var l Latency
	for _, p := range []struct {
		q   float64
		dst *float64
	}{{0.50, &l.P50}, {0.95, &l.P95}, {0.99, &l.P99}} {
		v, ok := quantile(p.q, buckets)
		if !ok {
			return nil
		}
		*p.dst = v * 1000
	}
	return &l
}

type edgeKey struct{ source, destination string }

// routeKey is a route and one backend service it sent calls to.
type routeKey struct{ route, backend string }

// sample is what all proxies counted between one scrape and the one
// before: increases summed into rows, and the connections open at it.
// Once in the ring it is never changed, so readers need no lock on it.
type sample struct {
	at time.Time
	// seconds since the previous sample, 0 for the first: the time its
	// increases are over.
	seconds   float64
	services  map[string]*signals
	routes    map[routeKey]*signals
	workloads map[string]*signals
	edges     map[edgeKey]*signals
}

func newSample(at time.Time) *sample {
	return &sample{at: at, services: map[string]*signals{}, routes: map[routeKey]*signals{},
		workloads: map[string]*signals{}, edges: map[edgeKey]*signals{}}
}

func row[K comparable](m map[K]*signals, k K) *signals {
	g := m[k]
	if g == nil {
		g = &signals{}
		m[k] = g
	}
	return g
}

// addIncrease puts what workload's proxy counted in series s into the
// rows it belongs to: its outbound series into the service, the edge and
// the route, its inbound ones into the workload. Calls counted once, at
// the caller, so a service's numbers are what its clients saw.
func (smp *sample) addIncrease(workload string, s series, v float64) {
	switch s.direction {
	case outbound:
		if s.service == "" {
			return // refused before the proxy knew where it would go
		}
		row(smp.services, s.service).add(s, v)
		row(smp.edges, edgeKey{workload, s.service}).add(s, v)
		if s.route != "" {
			row(smp.routes, routeKey{s.route, s.service}).add(s, v)
		}
	case inbound:
		row(smp.workloads, workload).add(s, v)
	}
}

// addOpen adds the connections open at one proxy's reading.
func (smp *sample) addOpen(workload string, r reading) {
	for s, v := range r.values {
		switch s.kind {
		case kindOpened:
		case kindClosed:
			v = -v
		default:
			continue
		}
		var g []*signals
		switch {
		case s.direction == outbound && s.service != "":
			g = []*signals{row(smp.services, s.service), row(smp.edges, edgeKey{workload, s.service})}
		case s.direction == inbound:
			g = []*signals{row(smp.workloads, workload)}
		}
		for _, g := range g {
			g.open += v
			g.tcp = true
		}
	}
}

// increase is what a proxy counted between two of its readings. A proxy
// that restarted counts from zero again: its process start time changed
// or, if it serves none, a counter went down or vanished (within one
// process the proxy's counters never do). Then everything it counted is
// since the restart, which was after prev.
func increase(prev, cur reading) map[series]float64 {
	restarted := prev.start != cur.start
	for s, v := range prev.values {
		if restarted {
			break
		}
		now, ok := cur.values[s]
		restarted = !ok || now < v
	}
	out := make(map[series]float64, len(cur.values))
	for s, v := range cur.values {
		if !restarted {
			v -= prev.values[s]
		}
		out[s] = v
	}
	return out
}

// sumOf sums the increases of the samples after the first into one set of
// rows, with the connections open at the last.
func sumOf(samples []*sample) *sample {
	end := samples[len(samples)-1]
	sum := newSample(end.at)
	for _, smp := range samples[1:] {
		mergeRows(sum.services, smp.services)
		mergeRows(sum.routes, smp.routes)
		mergeRows(sum.workloads, smp.workloads)
		mergeRows(sum.edges, smp.edges)
	}
	openAt(sum.services, end.services)
	openAt(sum.workloads, end.workloads)
	openAt(sum.edges, end.edges)
	return sum
}

func mergeRows[K comparable](dst, src map[K]*signals) {
	for k, g := range src {
		row(dst, k).merge(g)
	}
}

func openAt[K comparable](dst, end map[K]*signals) {
	for k, g := range end {
		row(dst, k).open = g.open
	}
}

// nearest is the index of the sample, not the last, whose time is nearest
// to t; of two as near, the older, so a window is never shorter than asked
// for because a scrape started a little late.
func nearest(samples []*sample, t time.Time) int {
	best := 0
	for i := 1; i < len(samples)-1; i++ {
		if absDuration(samples[i].at.Sub(t)) < absDuration(samples[best].at.Sub(t)) {
			best = i
		}
	}
	return best
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// rows turns a window's sums into the Summary's lists, sorted.
func (sum *sample) rows(seconds float64, out *Summary) {
	for _, name := range slices.Sorted(maps.Keys(sum.services)) {
		out.Services = append(out.Services, ServiceStats{Name: name, Signals: sum.services[name].out(seconds)})
	}
	for _, name := range slices.Sorted(maps.Keys(sum.workloads)) {
		out.Workloads = append(out.Workloads, WorkloadStats{Name: name, Signals: sum.workloads[name].out(seconds)})
	}
	routes := map[string]*signals{}
	backends := map[string][]string{}
	for k, g := range sum.routes {
		row(routes, k.route).merge(g)
		backends[k.route] = append(backends[k.route], k.backend)
	}
	for _, name := range slices.Sorted(maps.Keys(routes)) {
		slices.Sort(backends[name])
		out.Routes = append(out.Routes, RouteStats{Name: name, Backends: backends[name], Signals: routes[name].out(seconds)})
	}
	edges := slices.SortedFunc(maps.Keys(sum.edges), func(a, b edgeKey) int {
		return cmp.Or(cmp.Compare(a.source, b.source), cmp.Compare(a.destination, b.destination))
	})
	for _, k := range edges {
		g := sum.edges[k]
		e := EdgeStats{Source: k.source, Destination: k.destination, Signals: g.out(seconds)}
		if g.requests > 0 {
			mtls := g.tlsRequests >= g.requests
			e.MTLS = &mtls
		}
		out.Edges = append(out.Edges, e)
	}
}
