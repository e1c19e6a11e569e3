package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// report is everything one run measured, as written to bench/results.
type report struct {
	Date        time.Time     `json:"date"`
	Command     string        `json:"command"`
	Smoke       bool          `json:"smoke"`
	Duration    string        `json:"duration_per_run"`
	Connections int           `json:"connections"`
	Rates       []float64     `json:"rates"`
	Pinning     string        `json:"pinning"`
	Host        host          `json:"host"`
	Versions    []string      `json:"versions"`
	Setups      []setupReport `json:"setups"`
}

type host struct {
	CPUs         int    `json:"cpus"`
	Kernel       string `json:"kernel"`
	LoadAvgStart string `json:"loadavg_start"`
	LoadAvgEnd   string `json:"loadavg_end"`
}

type setupReport struct {
	Name string `json:"name"`
	// IdleRSS is each hop's resident memory after start and one request,
	// client side first.
	IdleRSS []int64  `json:"idle_rss_bytes,omitempty"`
	Results []result `json:"results"`
	// Failures name workloads that did not produce a result, and why.
	Failures []string `json:"failures,omitempty"`
	// Unsupported names workloads the setup cannot carry.
	Unsupported []string `json:"unsupported,omitempty"`
}

func (s *setupReport) find(workload string) (result, bool) {
	for _, r := range s.Results {
		if r.Workload == workload {
			return r, true
		}
	}
	return result{}, false
}

type suite struct {
	env      *env
	duration time.Duration
	conns    int
	rates    []float64
	log      *slog.Logger
	// profileOut, when set, is where the weft pair's CPU profile at the
	// headline rate is written.
	profileOut string
	// unbounded is the rate of the workloads that measure how fast a
	// setup goes: 0, as fast as it goes, but in the smoke run, which only
	// checks that each works: a peer saturating its core (HAProxy doing a
	// full handshake per connection) on a busy CI machine dropped
	// connections there.
	unbounded float64
}

func main() {
	// The runner re-executes itself as the TCP bulk source and client, as
	// the gRPC stream backend and client, and as the gostd pair's hops, so
	// they run pinned like every other part.
	bulkServeAddr := flag.String("bulk-serve", "", "internal: serve the TCP bulk source at this address")
	bulkGetAddr := flag.String("bulk-get", "", "internal: read from the TCP bulk source at this address for -duration")
	grpcStreamServeAddr := flag.String("grpc-stream-serve", "", "internal: serve the gRPC echo stream at this address")
	goHopConf := flag.String("gostd-hop", "", "internal: run one hop of the gostd pair from this configuration")
	grpcStreamGetAddr := flag.String("grpc-stream-get", "", "internal: play ping-pong on -connections gRPC streams at this address for -duration")
	duration := flag.Duration("duration", 15*time.Second, "length of each measured run")
	ratesFlag := flag.String("rates", "500,1000,2000", "fixed HTTP/1.1 request rates, req/s, comma-separated")
	setupsFlag := flag.String("setups", "direct,weft,nginx,haproxy,caddy,gostd", "setups to measure, comma-separated; direct is the baseline, gostd Go's standard library in weft's shape")
	conns := flag.Int("connections", 16, "client connections of the fortio runs and of the gRPC stream client (one stream each)")
	smoke := flag.Bool("smoke", false, "tiny run of every setup and workload that checks each produced a result with no error, timing nothing")
	bin := flag.String("bin", "bin", "directory holding weft and weft-proxy")
	tools := flag.String("tools", ".tools", "directory holding fortio and caddy")
	out := flag.String("out", "bench/results", "directory for the JSON results (with -smoke: none unless set)")
	doc := flag.String("doc", "docs/benchmarks.md", "Markdown page whose table is replaced (not with -smoke)")
	images := flag.String("images", "docs/images", "directory for the latency plots (not with -smoke)")
	from := flag.String("from", "", "measure nothing: write the table and plots again from this results file")
	profile := flag.Bool("profile", false, "record the weft pair with perf during the headline rate's run, into the results directory")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	var err error
	switch {
	case *bulkServeAddr != "":
		err = bulkServe(*bulkServeAddr)
	case *bulkGetAddr != "":
		err = bulkGet(*bulkGetAddr, *duration)
	case *grpcStreamServeAddr != "":
		err = grpcStreamServe(*grpcStreamServeAddr)
	case *goHopConf != "":
		err = goHop(*goHopConf)
	case *grpcStreamGetAddr != "":
		err = grpcStreamGet(*grpcStreamGetAddr, *conns, *duration)
	case *from != "":
		err = rewrite(*from, *doc, *images)
	default:
		outSet := false
		flag.Visit(func(f *flag.Flag) { outSet = outSet || f.Name == "out" })
		o := options{duration: *duration, rates: *ratesFlag, setups: *setupsFlag, conns: *conns, smoke: *smoke,
			bin: *bin, tools: *tools, out: *out, doc: *doc, images: *images, profile: *profile}
		if *smoke && !outSet {
			o.out = ""
		}
		err = run(log, o)
	}
	if err != nil {
		log.Error("bench failed", "err", err)
		os.Exit(1)
	}
}

type options struct {
	duration                     time.Duration
	rates, setups                string
	conns                        int
	smoke, profile               bool
	bin, tools, out, doc, images string
}

// rewrite renders the page's table and the plots from a results file.
func rewrite(results, doc, images string) error {
	data, err := os.ReadFile(results)
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	var rep report
	if err := json.Unmarshal(data, &rep); err != nil {
		return fmt.Errorf("results %s: %w", results, err)
	}
	if err := writeDoc(doc, &rep); err != nil {
		return err
	}
	return writePlots(images, &rep)
}

func parseRates(s string) ([]float64, error) {
	var rates []float64
	for _, f := range strings.Split(s, ",") {
		q, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || q <= 0 {
			return nil, fmt.Errorf("-rates: %q is not a positive request rate", f)
		}
		rates = append(rates, q)
	}
	return rates, nil
}

func parseSetups(s string) ([]string, error) {
	var names []string
	for _, n := range strings.Split(s, ",") {
		n = strings.TrimSpace(n)
		if setupByName(n) == nil {
			return nil, fmt.Errorf("-setups: unknown setup %q", n)
		}
		names = append(names, n)
	}
	if len(names) == 0 || names[0] != "direct" {
		return nil, fmt.Errorf("-setups: %q must start with direct, the baseline the others are compared to", s)
	}
	return names, nil
}

func run(log *slog.Logger, o options) error {
	if runtime.NumCPU() < 2 {
		return fmt.Errorf("the suite pins the proxies and the load generator to separate CPUs: it needs 2, this machine has %d", runtime.NumCPU())
	}
	if o.smoke {
		o.duration, o.rates, o.conns = time.Second, "50", 4
	}
	rates, err := parseRates(o.rates)
	if err != nil {
		return err
	}
	names, err := parseSetups(o.setups)
	if err != nil {
		return err
	}
	for _, p := range []string{filepath.Join(o.bin, "weft"), filepath.Join(o.bin, "weft-proxy"), filepath.Join(o.tools, "fortio"), filepath.Join(o.tools, "caddy")} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w (run `make build` and bench/install.sh, or `make bench`)", err)
		}
	}
	for _, p := range []string{"nginx", "haproxy", "h2load", "taskset"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Errorf("%s: %w (run bench/install.sh)", p, err)
		}
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	dir, err := os.MkdirTemp("", "weft-bench-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	// The scratch directory keeps every process's log; it is removed only
	// after a clean run.
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("this program's path: %w", err)
	}
	e := &env{dir: dir, self: self}
	if e.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if e.tools, err = filepath.Abs(o.tools); err != nil {
		return err
	}
	if e.certs, err = makeCerts(dir); err != nil {
		return err
	}
	rep := &report{Date: time.Now().UTC(), Command: strings.Join(os.Args[1:], " "), Smoke: o.smoke,
		Duration: o.duration.String(), Connections: o.conns, Rates: rates,
		Pinning:  fmt.Sprintf("proxies (both hops) on CPU %d; load generator and backend on CPU %d", proxyCPU, loadCPU),
		Host:     host{CPUs: runtime.NumCPU(), Kernel: readTrim("/proc/sys/kernel/osrelease"), LoadAvgStart: readTrim("/proc/loadavg")},
		Versions: versions(ctx, e)}
	if e.backend, err = startBackend(ctx, e); err != nil {
		return err
	}
	defer e.backend.stop()
	s := &suite{env: e, duration: o.duration, conns: o.conns, rates: rates, log: log}
	if o.smoke {
		s.unbounded = rates[0]
	}
	if o.profile {
		if _, err := exec.LookPath("perf"); err != nil {
			return fmt.Errorf("-profile: %w (Debian's linux-perf)", err)
		}
		if o.out == "" {
			return fmt.Errorf("-profile writes into the results directory: set -out")
		}
		s.profileOut = filepath.Join(o.out, rep.Date.Format("2006-01-02T1504Z")+"-weft-profile.txt")
	}
	if rep.Setups, err = s.measure(ctx, names); err != nil {
		return err
	}
	rep.Host.LoadAvgEnd = readTrim("/proc/loadavg")

	if o.out != "" {
		if err := writeJSON(o.out, rep); err != nil {
			return err
		}
	}
	if o.smoke {
		if err := checkSmoke(rep); err != nil {
			return fmt.Errorf("smoke run (logs kept in %s): %w", dir, err)
		}
		log.Info("smoke run passed", "setups", len(rep.Setups))
		return os.RemoveAll(dir)
	}
	if err := writeDoc(o.doc, rep); err != nil {
		return err
	}
	if err := writePlots(o.images, rep); err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

// workload is one kind of traffic, run through one started setup.
type workload struct {
	name string
	port func(front) int
	run  func(ctx context.Context, f front) (result, error)
}

func (s *suite) workloads() []workload {
	var ws []workload
	httpPort := func(f front) int { return f.HTTP }
	for _, q := range s.rates {
		ws = append(ws, workload{workloadLabel("http1", q), httpPort,
			func(ctx context.Context, f front) (result, error) { return s.httpLoad(ctx, f, q, true, s.duration) }})
	}
	return append(ws,
		workload{"http1-max", httpPort, func(ctx context.Context, f front) (result, error) {
			return s.httpLoad(ctx, f, s.unbounded, true, s.duration)
		}},
		workload{"http1-newconn", httpPort, func(ctx context.Context, f front) (result, error) {
			return s.httpLoad(ctx, f, s.unbounded, false, s.duration)
		}},
		workload{"grpc-unary", func(f front) int { return f.GRPC }, s.grpcLoad},
		workload{"grpc-stream", func(f front) int { return f.GRPCStream }, s.grpcStream},
		workload{"h2-streams", func(f front) int { return f.H2 }, s.h2Streams},
		workload{"tcp-bulk", func(f front) int { return f.TCP }, s.tcpBulk},
	)
}

// measure starts every setup, then runs each workload through each setup
// in turn, so that whatever else loads the machine during one workload
// weighs on every setup's run of it, not on one setup's whole turn.
func (s *suite) measure(ctx context.Context, names []string) ([]setupReport, error) {
	reports := make([]setupReport, len(names))
	started := make([]*running, len(names))
	defer func() {
		for _, r := range started {
			if r != nil {
				r.stop()
			}
		}
	}()
	for i, name := range names {
		var err error
		reports[i].Name = name
		if started[i], reports[i].IdleRSS, err = s.start(ctx, name); err != nil {
			return nil, fmt.Errorf("setup %s: %w", name, err)
		}
	}
	for _, w := range s.workloads() {
		for i, name := range names {
			r, sr := started[i], &reports[i]
			if w.port(r.front) == 0 {
				sr.Unsupported = append(sr.Unsupported, w.name)
				continue
			}
			res, err := s.runOne(ctx, name, r, w)
			if err != nil {
				s.log.Warn("workload failed", "setup", name, "workload", w.name, "err", err)
				sr.Failures = append(sr.Failures, fmt.Sprintf("%s: %v", w.name, err))
				continue
			}
			s.log.Info("measured", "setup", name, "workload", w.name, "qps", fmt.Sprintf("%.0f", res.ActualQPS),
				"p50_ms", fmt.Sprintf("%.3f", res.P50), "p99_ms", fmt.Sprintf("%.3f", res.P99), "errors", res.Errors,
				"MB/s", fmt.Sprintf("%.0f", res.MBps), "cpu_s", fmt.Sprintf("%.2f", res.ProxyCPUSeconds))
			sr.Results = append(sr.Results, res)
		}
	}
	return reports, nil
}

// start starts one setup, reads its proxies' idle RSS and warms it up.
func (s *suite) start(ctx context.Context, name string) (*running, []int64, error) {
	dir := filepath.Join(s.env.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("scratch directory: %w", err)
	}
	s.log.Info("starting setup", "setup", name)
	r, err := setupByName(name)(ctx, s.env, dir)
	if err != nil {
		return nil, nil, err
	}
	// Idle: started, one request through (the readiness check), settled.
	time.Sleep(time.Second)
	var idle []int64
	for _, p := range r.proxies {
		_, rss, err := treeUsage("/proc", p.pid())
		if err != nil {
			r.stop()
			return nil, nil, fmt.Errorf("idle RSS of %s: %w", p.name, err)
		}
		idle = append(idle, rss)
	}
	// A short unmeasured run, so that no setup's first measured run pays
	// for its connection pools and first handshakes.
	if _, err := s.httpLoad(ctx, r.front, 200, true, min(2*time.Second, s.duration)); err != nil {
		r.stop()
		return nil, nil, fmt.Errorf("warm-up: %w", err)
	}
	return r, idle, nil
}

// runOne runs one workload through one setup, sampling its proxies.
func (s *suite) runOne(ctx context.Context, name string, r *running, w workload) (result, error) {
	smp, err := startSampler(r.proxies)
	if err != nil {
		return result{}, err
	}
	var prof *profiler
	if s.profileOut != "" && name == "weft" && w.name == workloadLabel("http1", headlineRate(s.rates)) {
		if prof, err = startProfile(filepath.Join(s.env.dir, name), r.proxies, s.duration); err != nil {
			return result{}, err
		}
	}
	res, runErr := w.run(ctx, r.front)
	if err := smp.finish(&res); err != nil && runErr == nil {
		runErr = err
	}
	if prof != nil {
		header := fmt.Sprintf("perf samples of both weft-proxies (cpu-clock, 499 Hz) during %s, %s, %d connections.\n"+
			"perf's own cost is in the run, so its numbers are not the table's.\n\n", w.name, s.duration, s.conns)
		if err := prof.finish(ctx, s.profileOut, header); err != nil && runErr == nil {
			runErr = err
		}
	}
	for _, p := range append(r.proxies, r.others...) {
		if err := p.exited(); err != nil && runErr == nil {
			runErr = err
		}
	}
	res.Setup, res.Workload = name, w.name
	return res, runErr
}

// checkSmoke holds the smoke run to its one promise: every setup produced a
// result for every workload it carries, and none saw an error.
func checkSmoke(rep *report) error {
	var errs []error
	for _, s := range rep.Setups {
		for _, f := range s.Failures {
			errs = append(errs, fmt.Errorf("%s: %s", s.Name, f))
		}
		for _, r := range s.Results {
			if r.Errors != 0 || r.Requests == 0 {
				errs = append(errs, fmt.Errorf("%s %s: %d requests, %d errors", s.Name, r.Workload, r.Requests, r.Errors))
			}
		}
		if len(s.Results)+len(s.Failures)+len(s.Unsupported) == 0 {
			errs = append(errs, fmt.Errorf("%s: no workload ran", s.Name))
		}
	}
	return errors.Join(errs...)
}

func writeJSON(dir string, rep *report) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("results directory: %w", err)
	}
	path := filepath.Join(dir, rep.Date.Format("2006-01-02T1504Z")+".json")
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("results: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	return nil
}

func readTrim(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

// versions names what was measured, each tool's own first line.
func versions(ctx context.Context, e *env) []string {
	var vs []string
	for _, c := range [][]string{
		{"nginx", "-v"},
		{"haproxy", "-v"},
		{filepath.Join(e.tools, "caddy"), "version"},
		{filepath.Join(e.tools, "fortio"), "version"},
		{"h2load", "--version"},
	} {
		out, _ := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput()
		// A Go tool built by go install may not know its version
		// (caddy prints "unknown"); bench/install.sh's stamp does.
		if stamp, err := os.ReadFile(c[0] + ".version"); err == nil {
			out = stamp
		}
		line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		vs = append(vs, filepath.Base(c[0])+": "+line)
	}
	if out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output(); err == nil {
		vs = append(vs, "weft commit: "+strings.TrimSpace(string(out)))
	}
	return vs
}
