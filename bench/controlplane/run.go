package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/weftmesh/weft/internal/model"
)

// Config is one run of the harness.
type Config struct {
	Scale Scale
	// Parallel bounds the steady proxies starting at once.
	Parallel   int
	Contention string
	Logger     *slog.Logger
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
	cfg    Config
	mesh   *mesh
	cp     *server
	change atomic.Pointer[change]
}

// Run starts a control plane, loads the mesh, connects the proxies and
// measures. It returns an error when any proxy does not get its full
// config or a change does not reach each of its subscribers.
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
	res := &Result{Started: time.Now(), Scale: cfg.Scale, GoVersion: runtime.Version(), GOMAXPROCS: runtime.GOMAXPROCS(0),
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

	steady, err := h.bootstrap(ctx, res)
	defer closeAll(steady)
	if err != nil {
		return nil, err
	}
	res.Bootstrap.CPUSeconds = cpu.lap()
	if err := h.newProxies(ctx, res); err != nil {
		return nil, err
	}
	res.NewProxy.CPUSeconds = cpu.lap()
	if err := h.changes(ctx, res); err != nil {
		return nil, err
	}
	res.Changes.CPUSeconds = cpu.lap()
	res.Memory.AllHeapMiB = heapMiB()
	res.Memory.RSSMiB, res.Memory.PeakRSSMiB = rssMiB()
	res.CPUSeconds = cpu.total()
	if cfg.AfterChanges != nil {
		if err := cfg.AfterChanges(); err != nil {
			return nil, err
		}
	}
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

func (h *harness) newSim(idx int) *simProxy {
	spec := h.mesh.proxies[idx]
	p := &simProxy{idx: idx, spec: spec, subs: map[model.Ref]bool{}, perSvc: h.mesh.perSvc, h: h, full: make(chan struct{})}
	for _, r := range spec.subs {
		p.subs[r] = true
	}
	return p
}

// launch mints the proxy's join token (the operator's step, not timed),
// then starts it: the returned time is when the proxy started.
func (h *harness) launch(ctx context.Context, p *simProxy) (time.Time, error) {
	w := p.spec.workload
	tok, err := h.cp.joinToken(w.Ref.Namespace, w.ServiceAccount)
	if err != nil {
		return time.Time{}, fmt.Errorf("proxy %s: %w", w.Ref, err)
	}
	start := time.Now()
	return start, p.start(ctx, h.cp.addr(), h.cp.td, tok, h.cfg.Logger)
}

// waitFull waits for the proxy's first full config.
func waitFull(ctx context.Context, p *simProxy, timeout time.Duration) error {
	select {
	case <-p.full:
		return nil
	case <-p.done:
		return fmt.Errorf("proxy %s: its stream ended before a full config", p.spec.workload.Ref)
	case <-time.After(timeout):
		return fmt.Errorf("proxy %s: no full config within %s", p.spec.workload.Ref, timeout)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bootstrap connects the steady proxies, Parallel at a time, and waits
// for each one's full config.
func (h *harness) bootstrap(ctx context.Context, res *Result) ([]*simProxy, error) {
	n := h.cfg.Scale.Proxies
	h.cfg.Progress("connecting %d proxies, %d at a time", n, h.cfg.Parallel)
	proxies := make([]*simProxy, n)
	starts := make([]time.Time, n)
	var mu sync.Mutex
	var started []*simProxy
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(h.cfg.Parallel)
	begin := time.Now()
	for i := range n {
		g.Go(func() error {
			p := h.newSim(i)
			t, err := h.launch(ctx, p)
			if err != nil {
				return err
			}
			mu.Lock()
			started = append(started, p)
			mu.Unlock()
			proxies[i], starts[i] = p, t
			return waitFull(gctx, p, 2*time.Minute)
		})
	}
	err := g.Wait()
	if err != nil {
		return started, fmt.Errorf("bootstrap: %w", err)
	}
	took := time.Since(begin)
	var lat []time.Duration
	for i, p := range proxies {
		lat = append(lat, p.fullAt.Sub(starts[i]))
	}
	res.Bootstrap.Phase.Duration = ms(took)
	res.Bootstrap.Proxies = n
	res.Bootstrap.ToFull = distribution(lat)
	res.Bootstrap.PerSecond = float64(n) / took.Seconds()
	return started, nil
}

func closeAll(ps []*simProxy) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.close)
	}
	wg.Wait()
}

// newProxies connects the new proxies one at a time while the steady ones
// stay connected, timing each to its first full config.
func (h *harness) newProxies(ctx context.Context, res *Result) error {
	sc := h.cfg.Scale
	h.cfg.Progress("timing %d new proxies, one at a time", sc.NewProxies)
	var total, stream []time.Duration
	for i := sc.Proxies; i < sc.Proxies+sc.NewProxies; i++ {
		p := h.newSim(i)
		start, err := h.launch(ctx, p)
		if err == nil {
			err = waitFull(ctx, p, 30*time.Second)
		}
		p.close()
		if err != nil {
			return fmt.Errorf("new proxy: %w", err)
		}
		total = append(total, p.fullAt.Sub(start))
		stream = append(stream, p.fullAt.Sub(p.certAt))
	}
	res.NewProxy.Count = sc.NewProxies
	res.NewProxy.Total = distribution(total)
	res.NewProxy.Stream = distribution(stream)
	return nil
}

// changes moves one endpoint at a time to a new address and waits until
// each proxy subscribing to its service holds the new address.
func (h *harness) changes(ctx context.Context, res *Result) error {
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
		c := newChange(svc, moved.Ref.String(), moved.Address, store.Snapshot().Version+1, who)
		h.change.Store(c)
		c.start = time.Now()
		if err := store.Apply(source, model.Changes{PutWorkloads: []*model.Workload{&moved}}); err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
		if v := store.Snapshot().Version; v != c.version {
			return fmt.Errorf("change %d: published version %d, expected %d (something else changed the model)", i, v, c.version)
		}
		m.workloads[wi] = &moved
		select {
		case <-c.complete:
		case <-time.After(changeTimeout):
		case <-ctx.Done():
			return ctx.Err()
		}
		// Let responses to proxies that should not get one show up.
		time.Sleep(20 * time.Millisecond)
		h.change.Store(nil)

		c.mu.Lock()
		var worst time.Duration
		for _, d := range c.arrived {
			each = append(each, d)
			worst = max(worst, d)
		}
		for p := range c.touched {
			if !c.want[p] {
				extra++
			}
		}
		subs += len(who)
		touched += len(c.touched)
		missed += len(who) - len(c.arrived)
		c.mu.Unlock()
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
