package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// payloadPath asks fortio's echo handler for a 1 KiB body.
const payloadPath = "/echo?size=1024"

// result is one workload's measurement on one setup.
type result struct {
	Setup    string `json:"setup"`
	Workload string `json:"workload"`
	// RequestedQPS is 0 for a run at the maximum rate.
	RequestedQPS float64 `json:"requested_qps"`
	ActualQPS    float64 `json:"actual_qps"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors"`
	Seconds      float64 `json:"seconds"`
	// Latency percentiles in milliseconds (h2load gives only the mean).
	P50   float64 `json:"p50_ms,omitempty"`
	P90   float64 `json:"p90_ms,omitempty"`
	P99   float64 `json:"p99_ms,omitempty"`
	P999  float64 `json:"p99_9_ms,omitempty"`
	Mean  float64 `json:"mean_ms,omitempty"`
	CDF   []point `json:"cdf,omitempty"`
	MBps  float64 `json:"mb_per_s,omitempty"`
	Bytes int64   `json:"bytes,omitempty"`
	// ProxyCPUSeconds is user+system time of both hops during the run.
	ProxyCPUSeconds float64 `json:"proxy_cpu_s,omitempty"`
	// CPUPer1k is ProxyCPUSeconds per 1,000 requests.
	CPUPer1k float64 `json:"proxy_cpu_s_per_1k,omitempty"`
	// RSSPeak is each hop's peak resident memory during the run, in bytes,
	// client side first.
	RSSPeak []int64 `json:"rss_peak_bytes,omitempty"`
}

// point is one step of a latency distribution: Percent of requests took at
// most Ms milliseconds.
type point struct {
	Ms      float64 `json:"ms"`
	Percent float64 `json:"percent"`
}

// fortioResult is the part of fortio's -json output the suite reads.
type fortioResult struct {
	ActualQPS         float64
	ActualDuration    float64 // nanoseconds
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct{ Percentile, Value float64 }
		Data        []struct {
			End     float64
			Percent float64
		}
	}
	ErrorsDurationHistogram struct{ Count int64 }
}

// parseFortio turns fortio's JSON into a result; ok names the return code
// of a success ("200", or "SERVING" for gRPC ping).
func parseFortio(data []byte, ok string) (result, error) {
	var f fortioResult
	if err := json.Unmarshal(data, &f); err != nil {
		return result{}, fmt.Errorf("fortio JSON: %w", err)
	}
	h := f.DurationHistogram
	r := result{ActualQPS: f.ActualQPS, Requests: h.Count, Seconds: f.ActualDuration / 1e9}
	r.Errors = h.Count - f.RetCodes[ok]
	for _, p := range h.Percentiles {
		ms := p.Value * 1000
		switch p.Percentile {
		case 50:
			r.P50 = ms
		case 90:
			r.P90 = ms
		case 99:
			r.P99 = ms
		case 99.9:
			r.P999 = ms
		}
	}
	for _, d := range h.Data {
		r.CDF = append(r.CDF, point{Ms: d.End * 1000, Percent: d.Percent})
	}
	if h.Count == 0 {
		return r, fmt.Errorf("fortio made no request")
	}
	return r, nil
}

// fortioArgs are the options every fortio run shares: 10 µs histogram
// buckets (the default, 1 ms, would hide the differences measured here)
// and the percentiles reported. At a fixed rate the connections' calls are
// spread evenly over time (-uniform): by default fortio starts every
// connection's calls at the same instants, so 16 requests arrive at once
// and the latency measured is mostly the time a proxy takes to drain
// such a burst (about 8 times its CPU per request at the median), not
// what it adds to a request.
func fortioArgs(qps float64, conns int, d time.Duration, out string) []string {
	args := []string{"load", "-qps", strconv.FormatFloat(qps, 'f', -1, 64), "-c", strconv.Itoa(conns),
		"-t", d.String(), "-r", "0.00001", "-p", "50,90,99,99.9", "-json", out, "-loglevel", "error"}
	if qps > 0 {
		args = append(args, "-uniform")
	}
	return args
}

func (s *suite) fortio(ctx context.Context, out string, args ...string) ([]byte, error) {
	if _, err := runPinned(ctx, loadCPU, filepath.Join(s.env.tools, "fortio"), args...); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("fortio output: %w", err)
	}
	return data, nil
}

// httpLoad runs fortio against the HTTP/1.1 front at qps (0: as fast as it
// goes) for d, with keepalive or a new connection per request.
func (s *suite) httpLoad(ctx context.Context, f front, qps float64, keepalive bool, d time.Duration) (result, error) {
	out := filepath.Join(s.env.dir, "fortio.json")
	args := fortioArgs(qps, s.conns, d, out)
	if !keepalive {
		args = append(args, "-keepalive=false")
	}
	data, err := s.fortio(ctx, out, append(args, fmt.Sprintf("http://%s%s", addr(f.HTTP), payloadPath))...)
	if err != nil {
		return result{}, err
	}
	r, err := parseFortio(data, "200")
	r.RequestedQPS = qps
	return r, err
}

// grpcLoad runs fortio's gRPC ping client (unary calls, a 1 KiB payload)
// at the maximum rate.
func (s *suite) grpcLoad(ctx context.Context, f front) (result, error) {
	out := filepath.Join(s.env.dir, "fortio.json")
	args := append(fortioArgs(0, s.conns, s.duration, out), "-grpc", "-ping", "-payload-size", "1024", addr(f.GRPC))
	data, err := s.fortio(ctx, out, args...)
	if err != nil {
		return result{}, err
	}
	return parseFortio(data, "SERVING")
}

// grpcStream plays ping-pong with 1 KiB messages on one gRPC stream per
// connection for the run's duration, with this program as the client on
// the load generator's CPU.
func (s *suite) grpcStream(ctx context.Context, f front) (result, error) {
	out, err := runPinned(ctx, loadCPU, s.env.self, "-grpc-stream-get", addr(f.GRPCStream),
		"-duration", s.duration.String(), "-connections", strconv.Itoa(s.conns))
	if err != nil {
		return result{}, err
	}
	r, first, err := parseGRPCStream(out)
	if err == nil && r.Errors > 0 {
		// The result carries only the count: the log says what went wrong.
		s.log.Warn("gRPC stream errors", "front", addr(f.GRPCStream), "errors", r.Errors, "first", first)
	}
	return r, err
}

// parseGRPCStream turns the gRPC stream client's JSON into a result and
// the first error the client saw.
func parseGRPCStream(out []byte) (result, string, error) {
	var g grpcStreamResult
	if err := json.Unmarshal(out, &g); err != nil {
		return result{}, "", fmt.Errorf("gRPC stream client output %q: %w", out, err)
	}
	r := result{ActualQPS: g.PerSecond, Requests: g.Messages, Errors: g.Errors, Seconds: g.Seconds,
		P50: g.P50, P90: g.P90, P99: g.P99, P999: g.P999}
	if g.Messages == 0 {
		return r, g.FirstError, fmt.Errorf("gRPC stream client got no echo back (%d errors, first: %s)", g.Errors, g.FirstError)
	}
	return r, g.FirstError, nil
}

var (
	h2loadFinished = regexp.MustCompile(`finished in ([0-9.]+)(m?s), ([0-9.]+) req/s`)
	h2loadRequests = regexp.MustCompile(`requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored`)
	h2loadReqTime  = regexp.MustCompile(`time for request:\s+\S+\s+\S+\s+([0-9.]+)(us|ms|s)`)
)

// parseH2load reads h2load's summary.
func parseH2load(out string) (result, error) {
	var r result
	m := h2loadFinished.FindStringSubmatch(out)
	q := h2loadRequests.FindStringSubmatch(out)
	t := h2loadReqTime.FindStringSubmatch(out)
	if m == nil || q == nil || t == nil {
		return r, fmt.Errorf("h2load summary not understood: %q", lastLines(out, 12))
	}
	r.Seconds, _ = strconv.ParseFloat(m[1], 64)
	if m[2] == "ms" {
		r.Seconds /= 1000
	}
	r.ActualQPS, _ = strconv.ParseFloat(m[3], 64)
	done, _ := strconv.ParseInt(q[2], 10, 64)
	r.Requests = done
	// h2load's failed counts every request without a 2xx or 3xx answer:
	// errored ones and 4xx/5xx answers alike.
	r.Errors, _ = strconv.ParseInt(q[4], 10, 64)
	r.Mean, _ = strconv.ParseFloat(t[1], 64)
	switch t[2] {
	case "us":
		r.Mean /= 1000
	case "s":
		r.Mean *= 1000
	}
	if done == 0 {
		return r, fmt.Errorf("h2load made no request")
	}
	return r, nil
}

// h2Streams sends HTTP/2 (h2c, prior knowledge) requests on one connection
// with up to 100 streams in flight, for the run's duration.
func (s *suite) h2Streams(ctx context.Context, f front) (result, error) {
	secs := max(1, int(s.duration.Seconds()))
	out, err := runPinned(ctx, loadCPU, "h2load", "-c", "1", "-m", "100", "-D", strconv.Itoa(secs),
		fmt.Sprintf("http://%s%s", addr(f.H2), payloadPath))
	if err != nil {
		return result{}, err
	}
	return parseH2load(string(out))
}

// tcpBulk reads from the TCP bulk source through the front for the run's
// duration, with this program as the client on the load generator's CPU.
func (s *suite) tcpBulk(ctx context.Context, f front) (result, error) {
	out, err := runPinned(ctx, loadCPU, s.env.self, "-bulk-get", addr(f.TCP), "-duration", s.duration.String())
	if err != nil {
		return result{}, err
	}
	var b bulkResult
	if err := json.Unmarshal(out, &b); err != nil {
		return result{}, fmt.Errorf("bulk client output %q: %w", out, err)
	}
	if b.Bytes == 0 {
		return result{}, fmt.Errorf("bulk client read nothing through %s", addr(f.TCP))
	}
	return result{Bytes: b.Bytes, Seconds: b.Seconds, MBps: float64(b.Bytes) / b.Seconds / 1e6, Requests: 1}, nil
}

type bulkResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// bulkServe writes zeros to every connection until it closes.
func bulkServe(address string) error {
	l, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("bulk source: %w", err)
	}
	buf := make([]byte, 64<<10)
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("bulk source: %w", err)
		}
		go func() {
			defer c.Close()
			for {
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

// bulkGet reads from address for d and prints what it read as JSON.
func bulkGet(address string, d time.Duration) error {
	c, err := net.DialTimeout("tcp", address, 5*time.Second)
	if err != nil {
		return fmt.Errorf("bulk client: %w", err)
	}
	defer c.Close()
	start := time.Now()
	if err := c.SetReadDeadline(start.Add(d)); err != nil {
		return fmt.Errorf("bulk client: %w", err)
	}
	n, err := io.CopyBuffer(io.Discard, c, make([]byte, 64<<10))
	if ne, ok := err.(net.Error); err != nil && !(ok && ne.Timeout()) {
		return fmt.Errorf("bulk client: read %d bytes, then: %w", n, err)
	}
	return json.NewEncoder(os.Stdout).Encode(bulkResult{Bytes: n, Seconds: time.Since(start).Seconds()})
}

// sampler records the proxies' CPU time over a run and their peak RSS.
type sampler struct {
	pids  []int
	cpu0  []float64
	peak  []int64
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	first error
}

func startSampler(proxies []*proc) (*sampler, error) {
	s := &sampler{stop: make(chan struct{}), peak: make([]int64, len(proxies))}
	for _, p := range proxies {
		cpu, _, err := treeUsage("/proc", p.pid())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.name, err)
		}
		s.pids = append(s.pids, p.pid())
		s.cpu0 = append(s.cpu0, cpu)
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s, nil
}

func (s *sampler) sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, pid := range s.pids {
		_, rss, err := treeUsage("/proc", pid)
		if err != nil {
			if s.first == nil {
				s.first = err
			}
			continue
		}
		s.peak[i] = max(s.peak[i], rss)
	}
}

// finish stops sampling and fills the result's CPU and memory fields.
func (s *sampler) finish(r *result) error {
	close(s.stop)
	s.wg.Wait()
	s.sample()
	if s.first != nil {
		return s.first
	}
	if len(s.pids) == 0 {
		return nil
	}
	for i, pid := range s.pids {
		cpu, _, err := treeUsage("/proc", pid)
		if err != nil {
			return err
		}
		r.ProxyCPUSeconds += cpu - s.cpu0[i]
	}
	r.RSSPeak = s.peak
	if r.Requests > 0 && r.Bytes == 0 {
		r.CPUPer1k = r.ProxyCPUSeconds / float64(r.Requests) * 1000
	}
	return nil
}

// workloadNames in the order they run; http1-<rate> are expanded per rate.
func workloadLabel(kind string, qps float64) string {
	if qps > 0 {
		return kind + "-" + strconv.FormatFloat(qps, 'f', -1, 64)
	}
	return kind
}
