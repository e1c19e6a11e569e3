package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/control"
)

// simProxy is one simulated proxy: the real proxy's identity Source (a
// key made in memory, a CSR, Certify with a join token over TLS pinned to
// the CA's root) and its real discovery client (control.Client), minus
// the listeners. Only its config callback is the harness's.
type simProxy struct {
	idx  int
	spec proxySpec
	// perSvc is how many endpoints each subscribed service has.
	perSvc int
	// change is the change being watched for, if any.
	change *atomic.Pointer[change]

	// full is closed on the first config that has the workload and every
	// subscribed service with all its endpoints.
	full   chan struct{}
	certAt time.Time // when the SVID was held
	fullAt time.Time

	stop context.CancelFunc
	done chan struct{}
	conn *control.Conn
}

// start gets the proxy an SVID with token, then opens its discovery
// stream. It returns once the SVID is held; full is closed later.
func (p *simProxy) start(ctx context.Context, target string, td spiffeid.TrustDomain, token string, logger *slog.Logger) error {
	w := p.spec.workload
	trust, _, err := control.NewTrust(td, token)
	if err != nil {
		return fmt.Errorf("proxy %s: %w", w.Ref, err)
	}
	id, err := identity.WorkloadID(td, w.Ref.Namespace, w.ServiceAccount)
	if err != nil {
		return fmt.Errorf("proxy %s: %w", w.Ref, err)
	}
	src := identity.NewSource(id, control.NewCertifier(target, trust), logger)
	trust.Bind(src)
	ctx, p.stop = context.WithCancel(ctx)
	p.done = make(chan struct{})
	srcDone := make(chan struct{})
	go func() {
		defer close(srcDone)
		_ = src.Run(ctx)
	}()
	select {
	case <-src.Ready():
	case <-srcDone:
		p.stop()
		close(p.done)
		return fmt.Errorf("proxy %s: identity ended before its first certificate", w.Ref)
	case <-ctx.Done():
		return ctx.Err()
	}
	p.certAt = time.Now()
	p.conn = control.NewConn(target, trust.Credentials(), src.Leaf)
	client := control.NewClient(p.conn, w.Ref, logger)
	client.OnBundle = trust.OnBundle
	client.SetSubscriptions(p.spec.subs)
	go func() {
		defer close(p.done)
		defer func() { <-srcDone }()
		defer p.conn.Close()
		if err := client.Run(ctx, p.onConfig); err != nil {
			logger.Error("simulated proxy's discovery ended", "workload", w.Ref.String(), "err", err)
		}
	}()
	return nil
}

func (p *simProxy) close() {
	if p.stop != nil {
		p.stop()
		<-p.done
	}
}

// onConfig runs on the client's goroutine after each response.
func (p *simProxy) onConfig(cfg *model.ProxyConfig) {
	now := time.Now()
	select {
	case <-p.full:
	default:
		if p.isFull(cfg) {
			p.fullAt = now
			close(p.full)
		}
	}
	if c := p.change.Load(); c != nil {
		c.observe(p, cfg, now)
	}
}

func (p *simProxy) isFull(cfg *model.ProxyConfig) bool {
	if cfg.Workload == nil || cfg.Workload.Ref != p.spec.workload.Ref {
		return false
	}
	for _, r := range p.spec.subs {
		st := cfg.Services[r]
		if st == nil || len(st.Endpoints) != p.perSvc {
			return false
		}
	}
	return true
}

// change is one endpoint change in flight: a workload of svc moved to
// addr, published as snapshot version.
type change struct {
	svc     model.Ref
	epID    string
	addr    string
	version uint64

	mu sync.Mutex
	// arrived holds, per subscribed proxy, when its config had the change
	// (Unix ns: the harness, another process, knows when it was made).
	arrived map[int]int64
	want    map[int]bool
	// touched holds every proxy that got a response for this version.
	touched  map[int]bool
	complete chan struct{}
	left     atomic.Int64
}

func newChange(svc model.Ref, epID, addr string, version uint64, subscribers []int) *change {
	c := &change{svc: svc, epID: epID, addr: addr, version: version, arrived: map[int]int64{}, want: map[int]bool{},
		touched: map[int]bool{}, complete: make(chan struct{})}
	for _, p := range subscribers {
		c.want[p] = true
	}
	c.left.Store(int64(len(subscribers)))
	if len(subscribers) == 0 {
		close(c.complete)
	}
	return c
}

func (c *change) observe(p *simProxy, cfg *model.ProxyConfig, now time.Time) {
	if cfg.Version < c.version {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cfg.Version == c.version {
		c.touched[p.idx] = true
	}
	if !c.want[p.idx] {
		return
	}
	if _, ok := c.arrived[p.idx]; ok {
		return
	}
	st := cfg.Services[c.svc]
	if st == nil {
		return
	}
	if ep, ok := st.Endpoint(c.epID); ok && ep.Address == c.addr {
		c.arrived[p.idx] = now.UnixNano()
		if c.left.Add(-1) == 0 {
			close(c.complete)
		}
	}
}
