package control

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// Dial returns a connection to the control plane. It connects lazily and
// reconnects on its own, never waiting more than a few seconds between
// attempts, so a restarted control plane is found quickly. It pings every
// 30 seconds so a control plane that vanished without closing the
// connection is noticed (the server must allow it: discovery.ServerOptions).
func Dial(target string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
	if err != nil {
		return nil, fmt.Errorf("control plane %s: %w", target, err)
	}
	return conn, nil
}

// Client keeps a proxy's config current over the Discovery stream.
type Client struct {
	// OnBundle, when set before Run, is given each trust bundle the
	// control plane sends with its version: at every stream's start and
	// whenever the bundle or the CA's signing key changes.
	OnBundle func(roots []*x509.Certificate, version uint64)
	// Everything, when set before Run, subscribes to every service of the
	// mesh, now and later: a proxy that intercepts its app's connections
	// routes by cluster IP to services no outbound list names.
	Everything bool

	api      meshv1.DiscoveryClient
	workload model.Ref
	log      *slog.Logger

	mu sync.Mutex
	// want is the set of services the proxy wants.
	want map[model.Ref]struct{}
	// live is the open stream; nil while disconnected.
	live *session
	// The config as last built: the proxy's workload and the last state
	// known of each service, nil for one known not to exist. Kept across
	// streams so a disconnection changes nothing.
	own      *model.Workload
	services map[model.Ref]*model.ServiceState
	authz    *model.Authz
	version  uint64
}

// session is the client's side of one stream.
type session struct {
	// asked is what the server has been asked to stream.
	asked map[model.Ref]struct{}
	// synced holds the services a full state came for on this stream;
	// only those take deltas.
	synced map[model.Ref]struct{}
	kick   chan struct{}
}

// NewClient returns a client for the proxy of the given workload.
func NewClient(conn grpc.ClientConnInterface, workload model.Ref, logger *slog.Logger) *Client {
	if logger == nil {
		logger = slog.Default()
	}
	return &Client{
		api:      meshv1.NewDiscoveryClient(conn),
		workload: workload,
		log:      logger.With("component", "control", "workload", workload.String()),
		want:     map[model.Ref]struct{}{},
		services: map[model.Ref]*model.ServiceState{},
	}
}

// SetSubscriptions replaces the set of services the proxy wants. Changes
// go out on the live stream at once, or on the next one. Invalid refs are
// logged and left out: one bad name must not cost the proxy its stream.
func (c *Client) SetSubscriptions(refs []model.Ref) {
	want := make(map[model.Ref]struct{}, len(refs))
	for _, r := range refs {
		if err := model.ValidateRef(r); err != nil {
			c.log.Warn("not subscribing to an invalid service name", "service", r.String(), "err", err)
			continue
		}
		want[r] = struct{}{}
	}
	c.mu.Lock()
	c.want = want
	live := c.live
	c.mu.Unlock()
	if live != nil {
		select {
		case live.kick <- struct{}{}:
		default:
		}
	}
}

// Run keeps a Discovery stream open until ctx ends, calling onConfig with
// a new config after each response. onConfig runs on Run's goroutine; the
// config it gets is never modified afterwards. When the stream breaks, Run
// keeps the last config and reconnects with exponential backoff and
// jitter; the new stream's full states then replace the old ones service
// by service.
//
// Run returns nil when ctx ends, or an error the control plane says
// retrying cannot fix (an invalid request). Call it once per Client.
func (c *Client) Run(ctx context.Context, onConfig func(*model.ProxyConfig)) error {
	var bo backoffTimer
	for attempt := 1; ; attempt++ {
		served, err := c.stream(ctx, onConfig)
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) == codes.InvalidArgument {
			return fmt.Errorf("discovery stream for %s: %w", c.workload, err)
		}
		if served {
			bo.reset()
			attempt = 1
		}
		wait := bo.next()
		if attempt == 1 {
			c.log.Warn("discovery stream lost; keeping the last config", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			c.log.Debug("discovery stream still down", "attempt", attempt, "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// stream runs one Discovery stream until it breaks; served tells whether
// any response came, which resets the backoff.
func (c *Client) stream(ctx context.Context, onConfig func(*model.ProxyConfig)) (served bool, err error) {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// WaitForReady: while the control plane is unreachable this waits for
	// the connection, which redials on its own backoff.
	st, err := c.api.Stream(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false, err
	}
	s := &session{asked: map[model.Ref]struct{}{}, synced: map[model.Ref]struct{}{}, kick: make(chan struct{}, 1)}
	first := &meshv1.StreamRequest{Workload: wire.RefToProto(c.workload), SubscribeAll: c.Everything}
	c.mu.Lock()
	for r := range c.want {
		s.asked[r] = struct{}{}
	}
	first.Subscribe = refsToProto(s.asked)
	// Services no longer wanted will get no updates on this stream.
	maps.DeleteFunc(c.services, func(r model.Ref, _ *model.ServiceState) bool {
		_, ok := c.want[r]
		return !ok
	})
	c.live = s
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		if c.live == s {
			c.live = nil
		}
		c.mu.Unlock()
	}()
	if err := st.Send(first); err != nil {
		if errors.Is(err, io.EOF) {
			// The stream ended; its status comes from the receiving side.
			_, err = st.Recv()
		}
		return false, err
	}

	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := c.sendChanges(ctx, st, s); err != nil {
			cancel() // the receive below then fails too
		}
	}()

	for {
		resp, err := st.Recv()
		if err != nil {
			return served, err
		}
		if err := c.takeBundle(resp); err != nil {
			c.log.Error("bad trust bundle from the control plane", "err", err)
			return served, err
		}
		cfg, err := c.apply(s, resp)
		if err != nil {
			// The stream and the proxy disagree; a new stream starts over
			// from full states.
			c.log.Error("bad response from the control plane", "err", err)
			return served, err
		}
		if !served {
			c.log.Info("discovery stream up", "version", resp.GetVersion(), "subscriptions", len(first.GetSubscribe()))
		}
		served = true
		onConfig(cfg)
	}
}

// takeBundle hands a trust bundle in resp, if any, to OnBundle. A bundle
// that does not parse is refused whole: trusting part of it could cut
// peers off in the middle of a rotation.
func (c *Client) takeBundle(resp *meshv1.StreamResponse) error {
	if c.OnBundle == nil || len(resp.GetTrustBundle()) == 0 {
		return nil
	}
	roots, err := parseRoots(resp.GetTrustBundle())
	if err != nil {
		return fmt.Errorf("trust bundle version %d: %w", resp.GetBundleVersion(), err)
	}
	c.OnBundle(roots, resp.GetBundleVersion())
	return nil
}

// answered reports whether the control plane has said, for every one of
// refs, what the service is or that it does not exist.
func (c *Client) answered(refs []model.Ref) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range refs {
		if _, ok := c.services[r]; !ok {
			return false
		}
	}
	return true
}

// sendChanges sends subscription changes as SetSubscriptions makes them.
func (c *Client) sendChanges(ctx context.Context, st grpc.BidiStreamingClient[meshv1.StreamRequest, meshv1.StreamResponse], s *session) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.kick:
		}
		add, drop := map[model.Ref]struct{}{}, map[model.Ref]struct{}{}
		c.mu.Lock()
		for r := range c.want {
			if _, ok := s.asked[r]; !ok {
				add[r] = struct{}{}
				s.asked[r] = struct{}{}
			}
		}
		for r := range s.asked {
			if _, ok := c.want[r]; !ok {
				drop[r] = struct{}{}
				delete(s.asked, r)
				// Forget it now: updates still in flight are then ignored,
				// and subscribing again waits for a new full state.
				delete(s.synced, r)
				delete(c.services, r)
			}
		}
		c.mu.Unlock()
		if len(add) == 0 && len(drop) == 0 {
			continue
		}
		if err := st.Send(&meshv1.StreamRequest{Subscribe: refsToProto(add), Unsubscribe: refsToProto(drop)}); err != nil {
			return err
		}
	}
}

// apply takes in one response and returns the config after it. A response
// that does not convert changes nothing.
func (c *Client) apply(s *session, resp *meshv1.StreamResponse) (*model.ProxyConfig, error) {
	var own *model.Workload
	if resp.GetWorkload() != nil {
		w, err := wire.WorkloadFromProto(resp.GetWorkload())
		if err != nil {
			return nil, err
		}
		if w.Ref != c.workload {
			return nil, fmt.Errorf("sent workload %s, not ours", w.Ref)
		}
		own = w
	}
	var authz *model.Authz
	if resp.GetAuthz() != nil {
		a, err := wire.AuthzFromProto(resp.GetAuthz())
		if err != nil {
			return nil, err
		}
		authz = a
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	next := map[model.Ref]*model.ServiceState{}
	for _, u := range resp.GetServices() {
		r := wire.RefFromProto(u.GetRef())
		if _, ok := s.asked[r]; !ok && !c.Everything {
			continue // dropped since the server sent it
		}
		if _, ok := s.synced[r]; !ok && !u.GetFull() && u.GetExists() {
			continue // a delta from before a resubscription
		}
		base, ok := next[r]
		if !ok {
			base = c.services[r]
		}
		st, err := wire.ApplyUpdate(base, u, resp.GetVersion())
		if err != nil {
			return nil, err
		}
		next[r] = st
	}

	if own != nil {
		c.own = own
	}
	if resp.GetAuthz() != nil {
		c.authz = authz
	}
	for r, st := range next {
		c.services[r] = st
		s.synced[r] = struct{}{}
	}
	c.version = resp.GetVersion()

	cfg := &model.ProxyConfig{Version: c.version, Workload: c.own, Authz: c.authz, Services: make(map[model.Ref]*model.ServiceState, len(c.want))}
	for r := range c.want {
		if st := c.services[r]; st != nil {
			cfg.Services[r] = st
		}
	}
	if c.Everything {
		for r, st := range c.services {
			if st != nil {
				cfg.Services[r] = st
			}
		}
	}
	return cfg, nil
}

func refsToProto(set map[model.Ref]struct{}) []*meshv1.Ref {
	refs := slices.SortedFunc(maps.Keys(set), func(a, b model.Ref) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	out := make([]*meshv1.Ref, len(refs))
	for i, r := range refs {
		out[i] = wire.RefToProto(r)
	}
	return out
}

func parseRoots(ders [][]byte) ([]*x509.Certificate, error) {
	roots := make([]*x509.Certificate, 0, len(ders))
	for i, der := range ders {
		root, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("root %d: %w", i, err)
		}
		roots = append(roots, root)
	}
	return roots, nil
}
