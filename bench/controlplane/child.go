package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"golang.org/x/sync/errgroup"

	"github.com/weftmesh/weft/internal/model"
)

// The simulated proxies run in a process of their own, all of them in
// one, so that the harness process is the control plane's alone: its
// heap, RSS and CPU time are the control plane's, not the proxies'
// (which, at 2,000 proxies, are the larger part). The harness starts it
// by running its own executable with childEnv set, and drives it with
// one JSON request at a time on its stdin, each answered on its stdout.
const childEnv = "WEFT_BENCH_CONTROLPLANE_PROXIES"

// request is one command to the proxies' process; one field is set.
type request struct {
	Setup *setup `json:",omitempty"`
	// Bootstrap starts the steady proxies, so many at a time.
	Bootstrap int `json:",omitempty"`
	// NewProxy starts proxy NewProxy-1 alone, times it and closes it.
	NewProxy int `json:",omitempty"`
	// Arm has the proxies watch for a change; Collect waits for it.
	Arm     *armed        `json:",omitempty"`
	Collect time.Duration `json:",omitempty"`
	Stop    bool          `json:",omitempty"`
}

type setup struct {
	Scale       Scale
	Target      string
	TrustDomain string
	// Tokens are the join tokens of every proxy, by index.
	Tokens  []string
	Verbose bool
}

type armed struct {
	Service     string // namespace/name
	Endpoint    string
	Address     string
	Version     uint64
	Subscribers []int
}

type reply struct {
	Err string `json:",omitempty"`
	// ToFull is each steady proxy's start to full config.
	ToFull []time.Duration `json:",omitempty"`
	// Total and Stream time one new proxy.
	Total, Stream time.Duration `json:",omitempty"`
	// Arrived holds when each subscriber had the change (Unix ns);
	// Touched who was sent a response of its version.
	Arrived map[int]int64 `json:",omitempty"`
	Touched []int         `json:",omitempty"`
	// CPUSeconds and PeakRSSMiB are the proxies' process's, at Stop.
	CPUSeconds float64 `json:",omitempty"`
	PeakRSSMiB float64 `json:",omitempty"`
}

// proxies is the harness's handle on the proxies' process.
type proxies struct {
	cmd *exec.Cmd
	enc *json.Encoder
	dec *json.Decoder
	mu  sync.Mutex
}

func startProxies(ctx context.Context, s *setup) (*proxies, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("proxies' process: %w", err)
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("proxies' process: %w", err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("proxies' process: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("proxies' process: %w", err)
	}
	p := &proxies{cmd: cmd, enc: json.NewEncoder(in), dec: json.NewDecoder(out)}
	if _, err := p.call(request{Setup: s}); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *proxies) call(req request) (reply, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var rep reply
	if err := p.enc.Encode(req); err != nil {
		return rep, fmt.Errorf("proxies' process: %w", err)
	}
	if err := p.dec.Decode(&rep); err != nil {
		return rep, fmt.Errorf("proxies' process: %w", err)
	}
	if rep.Err != "" {
		return rep, errors.New(rep.Err)
	}
	return rep, nil
}

// stop closes every proxy and waits for the process to end.
func (p *proxies) stop() (reply, error) {
	rep, err := p.call(request{Stop: true})
	if werr := p.cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("proxies' process: %w", werr)
	}
	return rep, err
}

// childMain is the proxies' process: it serves the harness's requests
// until Stop or the end of its stdin.
func childMain() int {
	c := &child{}
	dec, enc := json.NewDecoder(os.Stdin), json.NewEncoder(os.Stdout)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer closeAll(c.steady)
	for {
		var req request
		if err := dec.Decode(&req); err != nil {
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "proxies' process:", err)
			return 1
		}
		rep, err := c.serve(ctx, req)
		if err != nil {
			rep.Err = err.Error()
		}
		if req.Stop {
			closeAll(c.steady)
			c.steady = nil
			rep.CPUSeconds = round3(cpuSeconds())
			_, rep.PeakRSSMiB = rssMiB()
		}
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintln(os.Stderr, "proxies' process:", err)
			return 1
		}
		if req.Stop {
			return 0
		}
	}
}

type child struct {
	s      *setup
	mesh   *mesh
	td     spiffeid.TrustDomain
	logger *slog.Logger
	steady []*simProxy
	change atomic.Pointer[change]
}

func (c *child) serve(ctx context.Context, req request) (reply, error) {
	switch {
	case req.Setup != nil:
		return reply{}, c.setup(req.Setup)
	case req.Bootstrap > 0:
		return c.bootstrap(ctx, req.Bootstrap)
	case req.NewProxy > 0:
		return c.newProxy(ctx, req.NewProxy-1)
	case req.Arm != nil:
		return reply{}, c.arm(req.Arm)
	case req.Collect > 0:
		return c.collect(ctx, req.Collect)
	}
	return reply{}, nil
}

func (c *child) setup(s *setup) error {
	m, err := newMesh(s.Scale)
	if err != nil {
		return err
	}
	if len(s.Tokens) != len(m.proxies) {
		return fmt.Errorf("setup: %d tokens for %d proxies", len(s.Tokens), len(m.proxies))
	}
	if c.td, err = spiffeid.TrustDomainFromString(s.TrustDomain); err != nil {
		return fmt.Errorf("setup: trust domain: %w", err)
	}
	level := slog.LevelError
	if s.Verbose {
		level = slog.LevelWarn
	}
	c.s, c.mesh, c.logger = s, m, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	return nil
}

func (c *child) newSim(idx int) *simProxy {
	spec := c.mesh.proxies[idx]
	return &simProxy{idx: idx, spec: spec, perSvc: c.mesh.perSvc, change: &c.change, full: make(chan struct{})}
}

func (c *child) start(ctx context.Context, p *simProxy) (time.Time, error) {
	start := time.Now()
	return start, p.start(ctx, c.s.Target, c.td, c.s.Tokens[p.idx], c.logger)
}

// bootstrap connects the steady proxies, parallel at a time, and waits
// for each one's full config.
func (c *child) bootstrap(ctx context.Context, parallel int) (reply, error) {
	n := c.s.Scale.Proxies
	ps := make([]*simProxy, n)
	starts := make([]time.Time, n)
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i := range n {
		g.Go(func() error {
			p := c.newSim(i)
			t, err := c.start(ctx, p)
			if err != nil {
				return err
			}
			mu.Lock()
			c.steady = append(c.steady, p)
			mu.Unlock()
			ps[i], starts[i] = p, t
			return waitFull(gctx, p, 2*time.Minute)
		})
	}
	if err := g.Wait(); err != nil {
		return reply{}, fmt.Errorf("bootstrap: %w", err)
	}
	rep := reply{ToFull: make([]time.Duration, n)}
	for i, p := range ps {
		rep.ToFull[i] = p.fullAt.Sub(starts[i])
	}
	return rep, nil
}

func (c *child) newProxy(ctx context.Context, idx int) (reply, error) {
	if idx < c.s.Scale.Proxies || idx >= len(c.mesh.proxies) {
		return reply{}, fmt.Errorf("new proxy %d: not one of the new proxies", idx)
	}
	p := c.newSim(idx)
	start, err := c.start(ctx, p)
	if err == nil {
		err = waitFull(ctx, p, 30*time.Second)
	}
	p.close()
	if err != nil {
		return reply{}, fmt.Errorf("new proxy: %w", err)
	}
	return reply{Total: p.fullAt.Sub(start), Stream: p.fullAt.Sub(p.certAt)}, nil
}

func (c *child) arm(a *armed) error {
	svc, err := model.ParseRef(a.Service, "")
	if err != nil {
		return err
	}
	c.change.Store(newChange(svc, a.Endpoint, a.Address, a.Version, a.Subscribers))
	return nil
}

// collect waits until every subscriber has the armed change or timeout
// passes, then a little longer for responses to proxies that should get
// none, and disarms it.
func (c *child) collect(ctx context.Context, timeout time.Duration) (reply, error) {
	ch := c.change.Load()
	if ch == nil {
		return reply{}, errors.New("collect: no change armed")
	}
	select {
	case <-ch.complete:
	case <-time.After(timeout):
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
	time.Sleep(20 * time.Millisecond)
	c.change.Store(nil)
	ch.mu.Lock()
	defer ch.mu.Unlock()
	rep := reply{Arrived: ch.arrived}
	for p := range ch.touched {
		rep.Touched = append(rep.Touched, p)
	}
	return rep, nil
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

func closeAll(ps []*simProxy) {
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Go(p.close)
	}
	wg.Wait()
}
