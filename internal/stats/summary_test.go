package stats

import (
	"errors"
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// mesh is a set of fake proxies scraped at times the test chooses.
type mesh struct {
	t       *testing.T
	s       *Scraper
	proxies map[string]*fakeProxy
	// down are the proxies whose next scrape fails; gone are not targets.
	down, gone map[string]bool
	at         time.Time
}

func newMesh(t *testing.T, names ...string) *mesh {
	m := &mesh{t: t, s: New(Options{Interval: 5 * time.Second, Retention: time.Minute, Logger: quiet}), proxies: map[string]*fakeProxy{},
		down: map[string]bool{}, gone: map[string]bool{}, at: t0}
	for i, n := range names {
		m.proxies[n] = newFakeProxy(n, float64(1000+i))
	}
	return m
}

// scrape records a sample at the mesh's clock, then moves it on 5s.
func (m *mesh) scrape() {
	var targets []Target
	var results []result
	for name, p := range m.proxies {
		if m.gone[name] {
			continue
		}
		targets = append(targets, Target{Workload: name, Addr: name + ":15000"})
		if m.down[name] {
			results = append(results, result{err: errors.New("connection refused")})
		} else {
			results = append(results, result{r: p.reading(m.t)})
		}
	}
	m.s.record(m.at, targets, results)
	m.at = m.at.Add(5 * time.Second)
}

func (m *mesh) p(name string) *fakeProxy { return m.proxies[name] }

// restart replaces a proxy by a new process with fresh counters.
func (m *mesh) restart(name string, start float64) { m.proxies[name] = newFakeProxy(name, start) }

func service(s Summary, name string) *ServiceStats {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestSummary(t *testing.T) {
	const web, v1, v2, catalog = "demo/web-0", "demo/catalog-v1-0", "demo/catalog-v2-0", "demo/catalog"
	tests := []struct {
		desc   string
		window time.Duration
		run    func(m *mesh)
		check  func(t *testing.T, s Summary)
	}{{
		desc: "rates, success, latency and the callee's own view", window: 5 * time.Second,
		run: func(m *mesh) {
			m.p(web).carry(call{service: catalog, status: 200, latency: 0.004, n: 7}) // before the first scrape: baseline
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, latency: 0.0025, n: 90})
			m.p(web).carry(call{service: catalog, status: 500, latency: 0.0025, n: 9})
			m.p(web).carry(call{service: catalog, status: 0, latency: 0.0025, n: 1})
			m.p(v1).carry(call{direction: inbound, status: 200, latency: 0.002, n: 60})
			m.p(v2).carry(call{direction: inbound, status: 200, latency: 0.002, n: 30})
			m.p(v2).carry(call{direction: inbound, status: 500, latency: 0.002, n: 10})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			c := service(s, catalog)
			if c == nil || c.Requests != 100 || c.Successes != 90 || !near(c.RPS, 20) || !near(*c.SuccessRate, 0.9) {
				t.Fatalf("catalog: %+v", c)
			}
			// All 100 in (2ms, 3ms]: p50 at 2.5 ms, p99 at 2.99 ms.
			if l := c.LatencyMs; l == nil || !near(l.P50, 2.5) || !near(l.P95, 2.95) || !near(l.P99, 2.99) {
				t.Errorf("catalog latency: %+v", c.LatencyMs)
			}
			if len(s.Workloads) != 3 || s.Workloads[0].Name != v1 || s.Workloads[0].Requests != 60 ||
				s.Workloads[1].Name != v2 || *s.Workloads[1].SuccessRate != 0.75 || s.Workloads[2].Name != web || s.Workloads[2].Requests != 0 {
				t.Errorf("workloads: %+v", s.Workloads)
			}
			if len(s.Edges) != 1 || s.Edges[0].Source != web || s.Edges[0].Destination != catalog || s.Edges[0].Requests != 100 ||
				s.Edges[0].MTLS == nil || !*s.Edges[0].MTLS {
				t.Errorf("edges: %+v", s.Edges)
			}
			if s.Seconds != 5 || !s.From.Equal(t0) || !s.To.Equal(t0.Add(5*time.Second)) || s.Proxies.Scraped != 3 {
				t.Errorf("window %v..%v (%vs), proxies %+v", s.From, s.To, s.Seconds, s.Proxies)
			}
		},
	}, {
		desc: "a proxy restarting mid-window counts from zero again, even above its old counts", window: 10 * time.Second,
		run: func(m *mesh) {
			m.p(web).carry(call{service: catalog, status: 200, n: 50})
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 30})
			m.scrape()
			m.restart(web, 5000)
			m.p(web).carry(call{service: catalog, status: 200, n: 120})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); c == nil || c.Requests != 150 || !near(c.RPS, 15) {
				t.Errorf("catalog: %+v, want 30+120 requests over 10s", c)
			}
		},
	}, {
		desc: "a restart of a proxy without a start time, seen by a counter going down", window: 10 * time.Second,
		run: func(m *mesh) {
			m.proxies[web] = newFakeProxy(web, 0)
			m.p(web).carry(call{service: catalog, status: 200, n: 50})
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 30})
			m.scrape()
			m.proxies[web] = newFakeProxy(web, 0)
			m.p(web).carry(call{service: catalog, status: 500, n: 20})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); c == nil || c.Requests != 50 || c.Successes != 30 {
				t.Errorf("catalog: %+v, want 50 requests, 30 successes", c)
			}
		},
	}, {
		desc: "a proxy missing a scrape counts in the next one", window: 15 * time.Second,
		run: func(m *mesh) {
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 10})
			m.down[web] = true
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 20})
			m.down[web] = false
			m.scrape()
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); c == nil || c.Requests != 30 || !near(c.RPS, 2) {
				t.Errorf("catalog: %+v", c)
			}
		},
	}, {
		desc: "the newest scrape's failures are listed", window: 5 * time.Second,
		run: func(m *mesh) {
			m.scrape()
			m.down[v2] = true
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if s.Proxies.Targets != 3 || s.Proxies.Scraped != 2 || len(s.Proxies.Failed) != 1 || s.Proxies.Failed[0].Workload != v2 ||
				s.Proxies.Failed[0].Error != "connection refused" {
				t.Errorf("proxies: %+v", s.Proxies)
			}
		},
	}, {
		desc: "a proxy's first reading is its baseline", window: 10 * time.Second,
		run: func(m *mesh) {
			m.gone[web] = true
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 1000})
			m.gone[web] = false
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 5})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); c == nil || c.Requests != 5 {
				t.Errorf("catalog: %+v, want the 5 after web's proxy was first read", c)
			}
		},
	}, {
		desc: "the window starts at the sample nearest to its start", window: 12 * time.Second,
		run: func(m *mesh) {
			for i := range 6 {
				m.p(web).carry(call{service: catalog, status: 200, n: 10 * (i + 1)})
				m.scrape()
			}
		},
		check: func(t *testing.T, s Summary) {
			// Samples at 0..25s carry 10..60 calls each: 12s before 25s is
			// nearest 15s, so the window sums the 50 and 60 of 20s and 25s.
			if c := service(s, catalog); s.Seconds != 10 || c == nil || c.Requests != 110 || !near(c.RPS, 11) {
				t.Errorf("window %vs, catalog %+v", s.Seconds, c)
			}
		},
	}, {
		desc: "of two samples as near, the older", window: 12500 * time.Millisecond,
		run: func(m *mesh) {
			for range 6 {
				m.p(web).carry(call{service: catalog, status: 200, n: 10})
				m.scrape()
			}
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); s.Seconds != 15 || c == nil || c.Requests != 30 {
				t.Errorf("window %vs, catalog %+v", s.Seconds, c)
			}
		},
	}, {
		desc: "a window longer than what is kept starts at the oldest sample", window: time.Hour,
		run: func(m *mesh) {
			// A minute at 5s keeps 13 samples; 20 scrapes drop 7.
			for range 20 {
				m.p(web).carry(call{service: catalog, status: 200, n: 1})
				m.scrape()
			}
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); s.Seconds != 60 || !s.From.Equal(t0.Add(35*time.Second)) || c == nil || c.Requests != 12 {
				t.Errorf("window %v (%vs), catalog %+v", s.From, s.Seconds, c)
			}
		},
	}, {
		desc: "a window shorter than the interval is one interval", window: time.Second,
		run: func(m *mesh) {
			m.scrape()
			m.p(web).carry(call{service: catalog, status: 200, n: 10})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if c := service(s, catalog); s.Seconds != 5 || c == nil || c.Requests != 10 {
				t.Errorf("window %vs, catalog %+v", s.Seconds, c)
			}
		},
	}, {
		desc: "connections open at the end, opened, closed and bytes in the window", window: 10 * time.Second,
		run: func(m *mesh) {
			m.p(web).conns(outbound, "demo/audit", 10, 8, 0, 0)
			m.p(v1).conns(inbound, "", 3, 0, 0, 0)
			m.scrape()
			m.p(web).conns(outbound, "demo/audit", 5, 4, 1000, 3000)
			m.scrape()
			m.p(web).conns(outbound, "demo/audit", 1, 0, 1000, 1000)
			m.p(v1).conns(inbound, "", 0, 1, 50, 0)
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			a := service(s, "demo/audit")
			if a == nil || a.TCP == nil || *a.TCP != (TCP{Open: 4, Opened: 6, Closed: 4, ReceivedBytesPerSec: 200, SentBytesPerSec: 400}) {
				t.Fatalf("audit: %+v", a)
			}
			if a.Requests != 0 || a.SuccessRate != nil || a.LatencyMs != nil {
				t.Errorf("audit, a TCP service: %+v", a)
			}
			if e := s.Edges[0]; e.Source != web || e.Destination != "demo/audit" || e.TCP == nil || e.TCP.Open != 4 || e.MTLS != nil {
				t.Errorf("edge: %+v", e)
			}
			if w := s.Workloads[0]; w.Name != v1 || w.TCP == nil || w.TCP.Open != 2 || w.TCP.ReceivedBytesPerSec != 5 {
				t.Errorf("workload: %+v", w)
			}
		},
	}, {
		desc: "connections of a proxy no longer in the model are not counted", window: 5 * time.Second,
		run: func(m *mesh) {
			m.p(web).conns(outbound, "demo/audit", 10, 0, 0, 0)
			m.p(v1).conns(outbound, "demo/audit", 1, 0, 0, 0)
			m.scrape()
			m.gone[web] = true
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if a := service(s, "demo/audit"); a == nil || a.TCP.Open != 1 {
				t.Errorf("audit: %+v", a)
			}
		},
	}, {
		desc: "connections of a proxy that missed a scrape still count", window: 5 * time.Second,
		run: func(m *mesh) {
			m.p(web).conns(outbound, "demo/audit", 10, 0, 0, 0)
			m.scrape()
			m.down[web] = true
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if a := service(s, "demo/audit"); a == nil || a.TCP.Open != 10 {
				t.Errorf("audit: %+v", a)
			}
		},
	}, {
		desc: "routes, their backends, and edges partly in plaintext", window: 5 * time.Second,
		run: func(m *mesh) {
			m.scrape()
			const r = "HTTPRoute demo/catalog-canary"
			m.p(web).carry(call{service: "demo/catalog-v1", route: r, status: 200, latency: 0.001, n: 90})
			m.p(web).carry(call{service: "demo/catalog-v2", route: r, status: 503, latency: 0.001, n: 10})
			m.p(web).carry(call{service: "demo/catalog-v2", status: 200, plaintext: true, latency: 0.001, n: 10})
			m.scrape()
		},
		check: func(t *testing.T, s Summary) {
			if len(s.Routes) != 1 {
				t.Fatalf("routes: %+v", s.Routes)
			}
			r := s.Routes[0]
			if r.Name != "HTTPRoute demo/catalog-canary" || len(r.Backends) != 2 || r.Backends[0] != "demo/catalog-v1" ||
				r.Requests != 100 || *r.SuccessRate != 0.9 || r.TCP != nil || !near(r.RPS, 20) {
				t.Errorf("route: %+v", r)
			}
			if c := service(s, "demo/catalog-v2"); c == nil || c.Requests != 20 || *c.SuccessRate != 0.5 {
				t.Errorf("catalog-v2: %+v", c)
			}
			if len(s.Edges) != 2 || *s.Edges[0].MTLS != true || *s.Edges[1].MTLS != false {
				t.Errorf("edges: %+v", s.Edges)
			}
		},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			m := newMesh(t, web, v1, v2)
			tc.run(m)
			tc.check(t, m.s.Summary(tc.window))
		})
	}
}

func TestSummaryBeforeTwoSamples(t *testing.T) {
	m := newMesh(t, "demo/web-0")
	s := m.s.Summary(30 * time.Second)
	if !s.LastScrape.IsZero() || s.Services == nil || s.Edges == nil || s.Proxies.Failed == nil || s.Window != "30s" || s.Interval != "5s" {
		t.Errorf("before any scrape: %+v", s)
	}
	m.p("demo/web-0").carry(call{service: "demo/catalog", status: 200, n: 1})
	m.scrape()
	s = m.s.Summary(30 * time.Second)
	if !s.LastScrape.Equal(t0) || !s.From.IsZero() || len(s.Services) != 0 {
		t.Errorf("after one scrape: %+v", s)
	}
}

func TestHistory(t *testing.T) {
	m := newMesh(t, "demo/web-0")
	web := m.p("demo/web-0")
	m.scrape()
	web.carry(call{service: "demo/catalog", status: 200, latency: 0.0025, n: 50})
	m.scrape()
	m.scrape()
	web.carry(call{service: "demo/catalog", status: 200, latency: 0.0025, n: 5})
	web.carry(call{service: "demo/catalog", status: 500, latency: 0.0025, n: 5})
	m.scrape()
	h := m.s.History("demo/catalog")
	if h.Service != "demo/catalog" || h.Interval != "5s" || len(h.Points) != 3 {
		t.Fatalf("history: %+v", h)
	}
	p := h.Points
	if !p[0].Time.Equal(t0.Add(5*time.Second)) || p[0].Seconds != 5 || p[0].Requests != 50 || p[0].RPS != 10 || *p[0].SuccessRate != 1 ||
		p[0].LatencyMs == nil || !near(p[0].LatencyMs.P50, 2.5) {
		t.Errorf("point 0: %+v", p[0])
	}
	if p[1].Requests != 0 || p[1].RPS != 0 || p[1].SuccessRate != nil || p[1].LatencyMs != nil {
		t.Errorf("point 1, quiet: %+v", p[1])
	}
	if p[2].Requests != 10 || *p[2].SuccessRate != 0.5 {
		t.Errorf("point 2: %+v", p[2])
	}
	if !m.s.Known("demo/catalog") || m.s.Known("demo/nothing") {
		t.Error("Known")
	}
	if h := m.s.History("demo/nothing"); len(h.Points) != 3 || h.Points[2].Requests != 0 {
		t.Errorf("history of an unknown service: %+v", h)
	}
}
