package stats

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Target is one proxy to scrape.
type Target struct {
	// Workload names the proxy's workload, "namespace/name"; its inbound
	// calls count under it, its outbound calls as its edges.
	Workload string
	// Addr is the proxy's admin address, host:port; /metrics is read there.
	Addr string
}

// Options configure a Scraper.
type Options struct {
	// Targets lists the proxies to scrape; it is called at every scrape,
	// so proxies come and go with the model.
	Targets func() []Target
	// Interval between scrapes; 0 means 5s.
	Interval time.Duration
	// Retention is how far back samples are kept; 0 means 10 minutes.
	Retention time.Duration
	// Timeout bounds the scrape of one proxy; 0 means 4/5 of the interval,
	// at most 5s, so a round ends before the next is due.
	Timeout time.Duration
	// Concurrency bounds the proxies scraped at once; 0 means 16.
	Concurrency int
	// Client makes the requests; nil means one of the Scraper's own that
	// goes straight to the proxies (no HTTP proxy from the environment).
	Client *http.Client
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultInterval  = 5 * time.Second
	DefaultRetention = 10 * time.Minute
)

// maxMetricsSize bounds what is read of one proxy's /metrics: a proxy's
// series are bounded by the mesh's objects, and a few MiB is far beyond
// what a proxy in a large mesh serves.
const maxMetricsSize = 16 << 20

// Scraper scrapes the proxies' metrics and answers from the samples it
// keeps. Its methods are safe for concurrent use.
type Scraper struct {
	opts   Options
	client *http.Client
	log    *slog.Logger

	mu sync.RWMutex
	// ring holds the samples, oldest first, at most capacity.
	ring     []*sample
	capacity int
	// states are each target's newest reading, by workload.
	states map[string]*targetState
	// failing are the targets whose scrapes fail, so that a failure is
	// logged once rather than at every scrape.
	failing map[string]bool
	last    round
}

// targetState is a target's newest successful reading.
type targetState struct {
	addr string
	r    reading
	at   time.Time
}

// round is how the newest scrape went.
type round struct {
	at      time.Time
	targets int
	scraped int
	failed  []ScrapeFailure
}

// New returns a Scraper; Run scrapes.
func New(opts Options) *Scraper {
	opts.Interval = cmp.Or(opts.Interval, DefaultInterval)
	opts.Retention = cmp.Or(opts.Retention, DefaultRetention)
	opts.Timeout = cmp.Or(opts.Timeout, min(opts.Interval*4/5, 5*time.Second))
	opts.Concurrency = cmp.Or(opts.Concurrency, 16)
	if opts.Targets == nil {
		opts.Targets = func() []Target { return nil }
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{
			// Straight to the proxies: their admin ports are not meant to
			// be reached through an HTTP proxy of the environment.
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: opts.Timeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			// Kept between scrapes, let go when a proxy is gone.
			IdleConnTimeout: 3 * opts.Interval,
		}}
	}
	return &Scraper{
		opts: opts, client: client, log: opts.Logger,
		// One more than the retention holds, as a window needs the sample
		// before its start.
		capacity: int(opts.Retention/opts.Interval) + 1,
		states:   map[string]*targetState{},
		failing:  map[string]bool{},
	}
}

// Run scrapes at once, then every interval, until ctx ends.
func (s *Scraper) Run(ctx context.Context) error {
	tick := time.NewTicker(s.opts.Interval)
	defer tick.Stop()
	for {
		s.Scrape(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// result is one target's scrape.
type result struct {
	r   reading
	err error
}

// Scrape reads every target once, concurrently, and records a sample.
// Run calls it; tests call it to take samples when they choose.
func (s *Scraper) Scrape(ctx context.Context) {
	at := time.Now()
	targets := dedupe(s.opts.Targets())
	results := make([]result, len(targets))
	sem := make(chan struct{}, s.opts.Concurrency)
	var wg sync.WaitGroup
	for i, t := range targets {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			results[i].r, results[i].err = s.fetch(ctx, t)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // cut short: the failures say nothing of the proxies
	}
	s.record(at, targets, results)
}

// dedupe keeps the first target of each workload, sorted, so the order of
// the model does not matter.
func dedupe(ts []Target) []Target {
	ts = slices.Clone(ts)
	slices.SortStableFunc(ts, func(a, b Target) int { return cmp.Compare(a.Workload, b.Workload) })
	return slices.CompactFunc(ts, func(a, b Target) bool { return a.Workload == b.Workload })
}

// fetch reads one proxy's metrics.
func (s *Scraper) fetch(ctx context.Context, t Target) (reading, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.Addr+"/metrics", nil)
	if err != nil {
		return reading{}, fmt.Errorf("metrics of %s: %w", t.Workload, err)
	}
	// The text format, which is what this package parses.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.client.Do(req)
	if err != nil {
		return reading{}, fmt.Errorf("metrics of %s: %w", t.Workload, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return reading{}, fmt.Errorf("metrics of %s: GET %s: %s", t.Workload, req.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetricsSize+1))
	if err != nil {
		return reading{}, fmt.Errorf("metrics of %s: reading: %w", t.Workload, err)
	}
	if len(body) > maxMetricsSize {
		return reading{}, fmt.Errorf("metrics of %s: more than %d bytes", t.Workload, maxMetricsSize)
	}
	r, err := parse(bytes.NewReader(body))
	if err != nil {
		return reading{}, fmt.Errorf("metrics of %s: %w", t.Workload, err)
	}
	return r, nil
}

// record makes a sample of one round's results.
func (s *Scraper) record(at time.Time, targets []Target, results []result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	smp := newSample(at)
	if n := len(s.ring); n > 0 {
		smp.seconds = at.Sub(s.ring[n-1].at).Seconds()
	}
	rd := round{at: at, targets: len(targets), failed: []ScrapeFailure{}}
	listed := make(map[string]bool, len(targets))
	for i, t := range targets {
		listed[t.Workload] = true
		st, res := s.states[t.Workload], results[i]
		if res.err != nil {
			rd.failed = append(rd.failed, ScrapeFailure{Workload: t.Workload, Address: t.Addr, Error: res.err.Error()})
			if !s.failing[t.Workload] {
				s.log.Warn("cannot read a proxy's metrics; what it counts meanwhile shows when it answers again",
					"workload", t.Workload, "err", res.err)
				s.failing[t.Workload] = true
			}
			continue
		}
		rd.scraped++
		if s.failing[t.Workload] {
			s.log.Info("reading a proxy's metrics again", "workload", t.Workload)
			delete(s.failing, t.Workload)
		}
		// Every proxy read has its workload's row, called or not.
		row(smp.workloads, t.Workload)
		if st != nil && st.addr == t.Addr {
			for ser, v := range increase(st.r, res.r) {
				smp.addIncrease(t.Workload, ser, v)
			}
		} else {
			// A proxy's first reading is its baseline: what it counted
			// before is of no known time. Its rows show from now on.
			for ser := range res.r.values {
				smp.addIncrease(t.Workload, ser, 0)
			}
		}
		s.states[t.Workload] = &targetState{addr: t.Addr, r: res.r, at: at}
	}
	for w := range s.failing {
		if !listed[w] {
			delete(s.failing, w)
		}
	}
	for w, st := range s.states {
		switch {
		case !listed[w]:
			delete(s.states, w) // its workload is gone from the model
		case at.Sub(st.at) <= 3*s.opts.Interval:
			// A proxy that missed a scrape or two still has its
			// connections; one silent for longer is not counted.
			smp.addOpen(w, st.r)
		}
	}
	if len(s.ring) == s.capacity {
		// A new array, so the slices readers copied stay as they were.
		s.ring = append(s.ring[1:len(s.ring):len(s.ring)], smp)
	} else {
		s.ring = append(s.ring, smp)
	}
	s.last = rd
}

// snapshot returns the samples and the newest round. The samples need no
// lock: record never changes a sample, nor an element of a ring it has
// handed out (it appends past the end, or to a new array).
func (s *Scraper) snapshot() ([]*sample, round) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ring, s.last
}

// Summary is every row's signals over the window that ends at the newest
// sample and starts at the sample nearest to window before it.
func (s *Scraper) Summary(window time.Duration) Summary {
	ring, rd := s.snapshot()
	out := Summary{
		Window: window.String(), Interval: s.opts.Interval.String(), LastScrape: rd.at,
		Proxies:  Scrapes{Targets: rd.targets, Scraped: rd.scraped, Failed: rd.failed},
		Services: []ServiceStats{}, Routes: []RouteStats{}, Workloads: []WorkloadStats{}, Edges: []EdgeStats{},
	}
	if out.Proxies.Failed == nil {
		out.Proxies.Failed = []ScrapeFailure{}
	}
	if len(ring) < 2 {
		return out
	}
	end := ring[len(ring)-1]
	start := nearest(ring, end.at.Add(-window))
	out.From, out.To = ring[start].at, end.at
	out.Seconds = end.at.Sub(ring[start].at).Seconds()
	sumOf(ring[start:]).rows(out.Seconds, &out)
	return out
}

// History is one service's signals at each sample kept.
func (s *Scraper) History(service string) History {
	ring, _ := s.snapshot()
	h := History{Service: service, Interval: s.opts.Interval.String(), Points: []Point{}}
	for _, smp := range ring {
		if smp.seconds <= 0 {
			continue // the first sample: baselines only
		}
		g := smp.services[service]
		if g == nil {
			g = &signals{}
		}
		sig := g.out(smp.seconds)
		h.Points = append(h.Points, Point{Time: smp.at, Seconds: smp.seconds, Requests: sig.Requests, RPS: sig.RPS,
			SuccessRate: sig.SuccessRate, LatencyMs: sig.LatencyMs})
	}
	return h
}

// Known reports whether a service has been seen in any sample kept, so a
// caller can tell a quiet service from a misspelt one.
func (s *Scraper) Known(service string) bool {
	ring, _ := s.snapshot()
	for _, smp := range ring {
		if _, ok := smp.services[service]; ok {
			return true
		}
	}
	return false
}
