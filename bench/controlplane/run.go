package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// Config is one run of the harness.
type Config struct {
	Scale Scale
	// Parallel bounds the steady proxies starting at once.
	Parallel   int
	Contention string
	Logger     *slog.Logger
	// Verbose has the proxies' process log its warnings too.
	Verbose bool
	// Progress, when set, is told what the run is doing.
	Progress func(format string, args ...any)
	// AfterChanges, when set, runs once the endpoint changes are done,
	// with everything still connected (a heap profile).
	AfterChanges func() error
}

// source is the model store owner the harness loads the mesh as.
const source = "bench"

// changeTimeout bounds the wait for one change to reach its subscribers.
const changeTimeout = 10 * time.Second

type harness struct {
	cfg     Config
	mesh    *mesh
	cp      *server
	proxies *proxies
}

// Run starts a control plane, loads the mesh, connects the proxies (in a
// process of their own) and measures. It returns an error when any proxy
// does not get its full config or a change does not reach each of its
// subscribers.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Parallel < 1 {
		cfg.Parallel = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	m, err := newMesh(cfg.Scale)
	if err != nil {
		return nil, err
	}
	res := &Result{Started: time.Now(), Scale: cfg.Scale, Parallel: cfg.Parallel, GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		NumCPU: runtime.NumCPU(), Contention: cfg.Contention}
	stateDir, err := os.MkdirTemp("", "weft-bench-cp-")
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	defer os.RemoveAll(stateDir)

	cpu := cpuClock()
	cp, err := newServer(stateDir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	h := &harness{cfg: cfg, mesh: m, cp: cp}
	runCtx, stopCP := context.WithCancel(ctx)
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.run(runCtx) }()
	defer func() {
		stopCP()
		if err := <-cpDone; err != nil {
			cfg.Logger.Error("control plane", "err", err)
		}
	}()

	// The mesh goes in as a source's first full read puts it, before any
	// proxy connects.
	cfg.Progress("loading %d services, %d endpoints in %d namespaces", cfg.Scale.Services, len(m.workloads), cfg.Scale.Namespaces)
	start := time.Now()
	for i, c := range m.batches() {
		if err := cp.store.Apply(source, c); err != nil {
			return nil, fmt.Errorf("load batch %d: %w", i, err)
		}
	}
	res.Load = Phase{Duration: ms(time.Since(start)), CPUSeconds: cpu.lap()}
	if err := checkLoaded(cp.store.Snapshot(), m); err != nil {
		return nil, err
	}
	res.Memory.ModelHeapMiB = heapMiB()

	// Join tokens are the operator's step, not the proxies': minted here,
	// before anything is timed.
	s := &setup{Scale: cfg.Scale, Target: cp.addr(), TrustDomain: cp.td.String(), Verbose: cfg.Verbose}
	for _, p := range m.proxies {
		tok, err := cp.joinToken(p.workload.Ref.Namespace, p.workload.ServiceAccount)
		if err != nil {
			return nil, err
		}
		s.Tokens = append(s.Tokens, tok)
	}
	cpu.lap()
	if h.proxies, err = startProxies(ctx, s); err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_, _ = h.proxies.stop()
		}
	}()

	if err := h.bootstrap(res); err != nil {
		return nil, err
	}
	res.Bootstrap.CPUSeconds = cpu.lap()
	if err := h.newProxies(res); err != nil {
		return nil, err
	}
	res.NewProxy.CPUSeconds = cpu.lap()
	if err := h.changes(res); err != nil {
		return nil, err
	}
	res.Changes.CPUSeconds = cpu.lap()
	res.Memory.HeapMiB = heapMiB()
	res.Memory.RSSMiB, res.Memory.PeakRSSMiB = rssMiB()
	res.CPUSeconds = cpu.total()
	if cfg.AfterChanges != nil {
		if err := cfg.AfterChanges(); err != nil {
			return nil, err
		}
	}
	stopped = true
	rep, err := h.proxies.stop()
	if err != nil {
		return nil, err
	}
	res.Proxies.CPUSeconds, res.Proxies.PeakRSSMiB = rep.CPUSeconds, rep.PeakRSSMiB
	res.evaluate()
	return res, nil
}

// checkLoaded verifies the store has every service with all its endpoints.
func checkLoaded(snap *model.Snapshot, m *mesh) error {
	for _, svc := range m.services {
		st, ok := snap.Service(svc.Ref)
		if !ok {
			return fmt.Errorf("load: service %s is not in the model", svc.Ref)
		}
		if len(st.Endpoints) != m.perSvc {
			return fmt.Errorf("load: service %s has %d endpoints, want %d", svc.Ref, len(st.Endpoints), m.perSvc)
		}
	}
	return nil
}

// bootstrap connects the steady proxies, Parallel at a time, each to its
// first full config.
func (h *harness) bootstrap(res *Result) error {
	n := h.cfg.Scale.Proxies
	h.cfg.Progress("connecting %d proxies, %d at a time", n, h.cfg.Parallel)
	begin := time.Now()
	rep, err := h.proxies.call(request{Bootstrap: h.cfg.Parallel})
	if err != nil {
		return err
	}
	took := time.Since(begin)
	res.Bootstrap.Duration = ms(took)
	res.Bootstrap.Proxies = n
	res.Bootstrap.ToFull = distribution(rep.ToFull)
	res.Bootstrap.PerSecond = float64(n) / took.Seconds()
	return nil
}

// newProxies connects the new proxies one at a time while the steady ones
// stay connected, timing each to its first full config.
func (h *harness) newProxies(res *Result) error {
	sc := h.cfg.Scale
	h.cfg.Progress("timing %d new proxies, one at a time", sc.NewProxies)
	var total, stream []time.Duration
	for i := sc.Proxies; i < sc.Proxies+sc.NewProxies; i++ {
		rep, err := h.proxies.call(request{NewProxy: i + 1})
		if err != nil {
			return err
		}
		total = append(total, rep.Total)
		stream = append(stream, rep.Stream)
	}
	res.NewProxy.Count = sc.NewProxies
	res.NewProxy.Total = distribution(total)
	res.NewProxy.Stream = distribution(stream)
	return nil
}

// changes moves one endpoint at a time to a new address and waits until
// each proxy subscribing to its service holds the new address.
func (h *harness) changes(res *Result) error {
	sc := h.cfg.Scale
	m := h.mesh
	subscribers := m.subscribers()
	var subscribed []int // services with subscribers, by index
	for i, svc := range m.services {
		if len(subscribers[svc.Ref]) > 0 {
			subscribed = append(subscribed, i)
		}
	}
	if len(subscribed) == 0 {
		return errors.New("changes: no service has a subscriber")
	}
	h.cfg.Progress("making %d endpoint changes", sc.Changes)
	rng := rand.New(rand.NewPCG(sc.Seed, 0x6368616e))
	store := h.cp.store
	var everywhere, each []time.Duration
	var subs, touched, extra, missed int
	for i := range sc.Changes {
		si := subscribed[rng.IntN(len(subscribed))]
		// Workloads 0 and 1 are proxies' own: a change to those would
		// also send the proxy its workload.
		wi := si*m.perSvc + 2 + rng.IntN(m.perSvc-2)
		moved := *m.workloads[wi]
		moved.Address = addr(len(m.workloads) + i)
		svc := m.services[si].Ref
		who := subscribers[svc]
		version := store.Snapshot().Version + 1
		if _, err := h.proxies.call(request{Arm: &armed{Service: svc.String(), Endpoint: moved.Ref.String(), Address: moved.Address,
			Version: version, Subscribers: who}}); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		start := time.Now()
		if err := store.Apply(source, model.Changes{PutWorkloads: []*model.Workload{&moved}}); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		if v := store.Snapshot().Version; v != version {
			return fmt.Errorf("change %d: published version %d, expected %d (something else changed the model)", i, v, version)
		}
		m.workloads[wi] = &moved
		rep, err := h.proxies.call(request{Collect: changeTimeout})
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		want := map[int]bool{}
		for _, p := range who {
			want[p] = true
		}
		var worst time.Duration
		for _, at := range rep.Arrived {
			d := time.Duration(at - start.UnixNano())
			each = append(each, d)
			worst = max(worst, d)
		}
		for _, p := range rep.Touched {
			if !want[p] {
				extra++
			}
		}
		subs += len(who)
		touched += len(rep.Touched)
		missed += len(who) - len(rep.Arrived)
		everywhere = append(everywhere, worst)
	}
	res.Changes.Count = sc.Changes
	res.Changes.Everywhere = distribution(everywhere)
	res.Changes.PerProxy = distribution(each)
	res.Changes.Subscribers = subs
	res.Changes.Touched = touched
	res.Changes.Extra = extra
	res.Changes.Missed = missed
	res.Changes.MeanSubscribers = float64(subs) / float64(sc.Changes)
	if missed > 0 {
		return fmt.Errorf("changes: %d of %d subscriber updates did not arrive within %s", missed, subs, changeTimeout)
	}
	return nil
}
