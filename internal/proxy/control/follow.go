package control

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/model"
)

// Applier takes configs into force; *proxy.Proxy is one. An error leaves
// the config in force before the call serving.
type Applier interface {
	Apply(*model.ProxyConfig) error
}

// Retry bounds for a config the proxy refused (a port in use, say): the
// cause is often outside the proxy and goes away.
const (
	firstApplyRetry = 500 * time.Millisecond
	maxApplyRetry   = 5 * time.Second
)

// Follow runs c and keeps a's config current until ctx ends or c fails for
// good; it returns Run's error. It subscribes to the services the workload
// calls, applies a config only once the control plane has answered for
// every one of them (so a proxy is never ready with an outbound port that
// knows nothing yet), and retries a config a refused, with backoff, until
// it or a newer one is taken. While a new workload is refused, the updates
// of the services the old one calls still reach the old one. Follow
// returns only when no Apply is running or will start.
func Follow(ctx context.Context, c *Client, a Applier, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	f := &follower{c: c, a: a, log: logger, latest: make(chan *model.ProxyConfig, 1)}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { f.applyLoop(ctx) })
	err := c.Run(ctx, f.offer)
	cancel()
	wg.Wait()
	return err
}

type follower struct {
	c   *Client
	a   Applier
	log *slog.Logger
	// latest holds the newest config not yet handed to applyLoop.
	latest chan *model.ProxyConfig

	mu sync.Mutex
	// applied is the config in force; nil before the first. offered is
	// the newest config offered.
	applied, offered *model.ProxyConfig
	waiting          bool
}

// offer runs on Run's goroutine with each new config.
func (f *follower) offer(pc *model.ProxyConfig) {
	if pc.Workload == nil {
		f.mu.Lock()
		first := !f.waiting
		f.waiting = true
		f.mu.Unlock()
		if first {
			// Normal at start: the manifest or registration naming this
			// workload has not reached the control plane yet.
			f.log.Info("waiting for the control plane to know this workload")
		}
		return
	}
	calls := Calls(pc)
	f.mu.Lock()
	f.offered = pc
	// Under the lock, so that apply, which narrows the subscriptions, never
	// drops what this newer config needs.
	f.c.SetSubscriptions(union(calls, Calls(f.applied)))
	f.mu.Unlock()
	if !f.c.answered(calls) {
		return // the full states asked for come with a later config
	}
	select {
	case <-f.latest: // superseded before it was applied
	default:
	}
	f.latest <- pc
}

func (f *follower) applyLoop(ctx context.Context) {
	var (
		pending *model.ProxyConfig
		retry   <-chan time.Time
		wait    = firstApplyRetry
	)
	for {
		select {
		case <-ctx.Done():
			return
		case pending = <-f.latest:
			wait = firstApplyRetry
		case <-retry:
		}
		retry = nil
		if err := f.apply(pending); err != nil {
			f.log.Error("config not applied; the previous one stays in force", "version", pending.Version, "retry_in", wait, "err", err)
			retry = time.After(wait)
			wait = min(2*wait, maxApplyRetry)
		}
	}
}

// apply takes pc into force or, when a refuses it, takes its service
// states into force under the workload already applied.
func (f *follower) apply(pc *model.ProxyConfig) error {
	err := f.a.Apply(pc)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		f.applied = pc
		f.waiting = false
		f.c.SetSubscriptions(union(Calls(pc), Calls(f.offered)))
		return nil
	}
	if f.applied != nil && !f.applied.Workload.Equal(pc.Workload) {
		keep := &model.ProxyConfig{Version: pc.Version, Workload: f.applied.Workload, Services: pc.Services, Authz: pc.Authz}
		if kerr := f.a.Apply(keep); kerr != nil {
			f.log.Warn("service updates not applied to the workload in force", "version", pc.Version, "err", kerr)
		}
	}
	return err
}

// Calls are the services a config's workload calls, and the backends the
// routes of those services send requests to; nil calls none.
func Calls(pc *model.ProxyConfig) []model.Ref {
	if pc == nil || pc.Workload == nil {
		return nil
	}
	refs := make([]model.Ref, 0, len(pc.Workload.Outbound))
	for _, o := range pc.Workload.Outbound {
		refs = append(refs, o.Service)
		if st := pc.Services[o.Service]; st != nil {
			for _, b := range st.Routes.Backends() {
				refs = append(refs, model.Ref{Namespace: o.Service.Namespace, Name: b})
			}
		}
	}
	return union(refs)
}

// union returns the refs of every list, each once, in first-seen order.
func union(lists ...[]model.Ref) []model.Ref {
	seen := map[model.Ref]bool{}
	var out []model.Ref
	for _, l := range lists {
		for _, r := range l {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
			}
		}
	}
	return out
}
