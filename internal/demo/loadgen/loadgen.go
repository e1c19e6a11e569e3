package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"time"
)

// Config configures a run.
type Config struct {
	// Target is the URL to GET; its host must be loopback.
	Target string
	// Rate is requests per second; default 5.
	Rate float64
	// Concurrency bounds requests in flight; default 8. A tick that finds
	// every slot busy is skipped, not queued, so the rate stays fixed.
	Concurrency int
	// Duration ends the run after this long; 0 runs until ctx ends.
	Duration time.Duration
	// Requests ends the run after this many requests; 0 means no limit.
	Requests int64
	// ReportEvery is the summary interval; default 5s.
	ReportEvery time.Duration
	// Timeout bounds each request; default 5s.
	Timeout time.Duration
	Log     *slog.Logger
}

// Summary counts a whole run or one report interval.
type Summary struct {
	Requests  int64
	Successes int64 // 2xx answers
	Failures  int64 // other answers, timeouts and transport errors
	Skipped   int64 // ticks dropped because Concurrency requests were in flight
	P50, P99  time.Duration
}

func (c *Config) defaults() error {
	c.Rate = orDefault(c.Rate, 5)
	c.Concurrency = orDefault(c.Concurrency, 8)
	c.ReportEvery = orDefault(c.ReportEvery, 5*time.Second)
	c.Timeout = orDefault(c.Timeout, 5*time.Second)
	if c.Log == nil {
		c.Log = slog.Default()
	}
	switch {
	case c.Rate < 0 || c.Rate > 100_000:
		return fmt.Errorf("rate %v: must be within (0, 100000]", c.Rate)
	case c.Concurrency < 0:
		return fmt.Errorf("concurrency %d: must be > 0", c.Concurrency)
	case c.Duration < 0 || c.Requests < 0 || c.ReportEvery < 0 || c.Timeout < 0:
		return errors.New("duration, requests, report interval and timeout must be >= 0")
	}
	return checkTarget(c.Target)
}

// checkTarget accepts only http(s) URLs whose host is loopback.
func checkTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("target %q: scheme must be http or https", target)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("target %q: host must be loopback (127.0.0.0/8, ::1 or localhost)", target)
}

// Run calls cfg.Target until ctx ends, cfg.Duration passes or cfg.Requests
// have been sent, waits for the requests in flight, logs the final summary
// and returns it. Requests cut short because ctx ended are not counted.
func Run(ctx context.Context, cfg Config) (Summary, error) {
	if err := cfg.defaults(); err != nil {
		return Summary{}, fmt.Errorf("loadgen: %w", err)
	}
	r := &runner{
		cfg: cfg,
		client: &http.Client{
			Timeout: cfg.Timeout,
			Transport: &http.Transport{
				DialContext:         (&net.Dialer{Timeout: cfg.Timeout}).DialContext,
				MaxIdleConnsPerHost: cfg.Concurrency,
				IdleConnTimeout:     90 * time.Second,
			},
		},
	}
	defer r.client.CloseIdleConnections()
	cfg.Log.Info("load starting", "target", cfg.Target, "rate", cfg.Rate, "concurrency", cfg.Concurrency,
		"duration", cfg.Duration, "requests", cfg.Requests)
	r.loop(ctx)
	total := r.total.summary()
	logSummary(cfg.Log, "load done", total)
	return total, nil
}

type runner struct {
	cfg    Config
	client *http.Client

	mu     sync.Mutex
	total  counts
	window counts
}

func (r *runner) loop(ctx context.Context) {
	stopIssuing := ctx
	if r.cfg.Duration > 0 {
		var cancel context.CancelFunc
		stopIssuing, cancel = context.WithTimeout(ctx, r.cfg.Duration)
		defer cancel()
	}
	tick := time.NewTicker(time.Duration(float64(time.Second) / r.cfg.Rate))
	defer tick.Stop()
	report := time.NewTicker(r.cfg.ReportEvery)
	defer report.Stop()

	slots := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait()
	var issued int64
	for r.cfg.Requests == 0 || issued < r.cfg.Requests {
		select {
		case <-stopIssuing.Done():
			return
		case <-report.C:
			r.mu.Lock()
			w := r.window.summary()
			r.window = counts{}
			r.mu.Unlock()
			logSummary(r.cfg.Log, "load", w)
			continue
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			r.record(func(c *counts) { c.skipped++ })
			continue
		}
		issued++
		wg.Go(func() {
			defer func() { <-slots }()
			r.once(ctx)
		})
	}
}

func (r *runner) once(ctx context.Context) {
	start := time.Now()
	ok := r.call(ctx)
	d := time.Since(start)
	if ctx.Err() != nil {
		return // cut short by the caller: not a failure of the target
	}
	r.record(func(c *counts) { c.add(ok, d) })
}

func (r *runner) call(ctx context.Context) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.Target, nil)
	if err != nil {
		return false
	}
	resp, err := r.client.Do(req)
	if err != nil {
		r.cfg.Log.Debug("load request failed", "err", err)
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<20)) // so the connection is reused
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

func (r *runner) record(f func(*counts)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(&r.total)
	f(&r.window)
}

// counts accumulates one Summary.
type counts struct {
	requests, successes, failures, skipped int64
	latency                                sample
}

func (c *counts) add(ok bool, d time.Duration) {
	c.requests++
	if ok {
		c.successes++
	} else {
		c.failures++
	}
	c.latency.add(d)
}

func (c *counts) summary() Summary {
	return Summary{
		Requests: c.requests, Successes: c.successes, Failures: c.failures, Skipped: c.skipped,
		P50: c.latency.percentile(50), P99: c.latency.percentile(99),
	}
}

func logSummary(log *slog.Logger, msg string, s Summary) {
	log.Info(msg, "requests", s.Requests, "ok", s.Successes, "failed", s.Failures, "skipped", s.Skipped,
		"p50", s.P50.Round(time.Microsecond).String(), "p99", s.P99.Round(time.Microsecond).String())
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
