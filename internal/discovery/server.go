package discovery

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// MaxSubscriptions bounds the services one stream may subscribe to. A
// gateway subscribing to the whole mesh stays well under it.
const MaxSubscriptions = 1 << 16

// ServerOptions are the gRPC server options to serve the API with. Proxies
// ping every 30 seconds to notice a dead control plane (see
// control.Dial); a server with gRPC's default policy (at most one ping
// every 5 minutes) would close their connections as abusive. The server
// pings too, so that Connected() forgets proxies that vanished.
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
}

// Server is the Discovery gRPC service.
//
// One goroutine watches the store. For each new snapshot it compares, for
// each service some stream subscribes to, the old and new *ServiceState
// pointers, and marks the changed ones on the streams that subscribe to
// them. Each stream then diffs only those, against the newest snapshot,
// whenever it is free to send: a slow stream skips the snapshots it missed
// instead of queueing them.
type Server struct {
	meshv1.UnimplementedDiscoveryServer

	store  *model.Store
	logger *slog.Logger
	now    func() time.Time

	// Authorize, when set before serving, decides whether a stream's caller
	// may be the proxy of workload ref: at the stream's start (w is nil
	// while the mesh does not know the workload yet) and whenever the
	// workload is sent. An error ends the stream with PERMISSION_DENIED.
	Authorize func(ctx context.Context, ref model.Ref, w *model.Workload) error
	// Bundle, when set before serving, gives the trust bundle (DER roots)
	// and its version; each stream sends it first and again whenever the
	// version changes. Call BundleChanged to have every stream look.
	Bundle func() (roots [][]byte, version uint64)
	// Observer, when set before serving, is told of streams starting and
	// ending and of every response sent (the control plane's metrics).
	Observer Observer

	mu      sync.Mutex
	streams map[*stream]struct{}
	// everything holds the streams that subscribe to every service.
	everything map[*stream]struct{}
	byService  map[model.Ref]map[*stream]struct{}
	byWorkload map[model.Ref]map[*stream]struct{}
	// stopWatch stops the watching goroutine, which runs only while some
	// stream is open.
	stopWatch chan struct{}
	// current is the newest snapshot the watcher has looked at. Streams
	// read this one, not the store's: a stream's view is then never ahead
	// of the watcher's, so each later change shows as a difference between
	// two snapshots the watcher compares. (Reading the store could miss a
	// service made and deleted again between two of them.)
	current atomic.Pointer[model.Snapshot]
	closed  bool
	done    chan struct{}
}

var _ meshv1.DiscoveryServer = (*Server)(nil)

// NewServer returns a server streaming the store's snapshots.
func NewServer(store *model.Store, logger *slog.Logger) *Server {
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{
		store:      store,
		logger:     logger,
		now:        time.Now,
		streams:    map[*stream]struct{}{},
		everything: map[*stream]struct{}{},
		byService:  map[model.Ref]map[*stream]struct{}{},
		byWorkload: map[model.Ref]map[*stream]struct{}{},
		done:       make(chan struct{}),
	}
}

// Close ends every stream with UNAVAILABLE, so proxies reconnect to
// another control plane or to this one restarted, and refuses new ones.
// gRPC's GracefulStop waits for streams to end, which these never do on
// their own: call Close first.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}

// errShuttingDown ends or refuses streams once Close is called.
// (gRPC status errors compare by code and message with errors.Is.)
var errShuttingDown = status.Error(codes.Unavailable, "control plane shutting down")

// ProxyInfo describes one connected proxy.
type ProxyInfo struct {
	Workload      model.Ref
	Peer          string
	Subscriptions []model.Ref
	// Version is the snapshot version of the last response sent.
	Version uint64
	Since   time.Time
}

// Connected lists the open streams, by workload.
func (s *Server) Connected() []ProxyInfo {
	s.mu.Lock()
	out := make([]ProxyInfo, 0, len(s.streams))
	for st := range s.streams {
		out = append(out, st.info())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b ProxyInfo) int {
		if c := model.CompareRefs(a.Workload, b.Workload); c != 0 {
			return c
		}
		return a.Since.Compare(b.Since)
	})
	return out
}

// stream is the server's side of one proxy's stream.
type stream struct {
	workload model.Ref
	peer     string
	since    time.Time
	version  atomic.Uint64
	// notify wakes the sender; it holds at most one wake-up, which is how
	// snapshots coalesce.
	notify chan struct{}

	mu   sync.Mutex
	subs map[model.Ref]struct{}
	// dirty holds services to look at on the next send: new subscriptions
	// and changed services.
	dirty map[model.Ref]struct{}
	// dropped holds services unsubscribed since the last send, whose sent
	// state is to be forgotten (before dirty is looked at: a service
	// dropped and added again starts over with a full state).
	dropped map[model.Ref]struct{}
	// pending is when the watcher saw the oldest snapshot that changed
	// something for this stream since its last send; zero when none did.
	// The push latency is measured from it.
	pending time.Time
	removed bool // guarded by Server.mu
}

// touch marks service r changed by the snapshot seen at seen.
func (st *stream) touch(r model.Ref, seen time.Time) {
	st.mu.Lock()
	st.dirty[r] = struct{}{}
	st.markLocked(seen)
	st.mu.Unlock()
	st.wake()
}

// changed marks the stream's workload or authorization changed by the
// snapshot seen at seen.
func (st *stream) changed(seen time.Time) {
	st.mu.Lock()
	st.markLocked(seen)
	st.mu.Unlock()
	st.wake()
}

func (st *stream) markLocked(seen time.Time) {
	if st.pending.IsZero() {
		st.pending = seen
	}
}

func (st *stream) wake() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

func (st *stream) info() ProxyInfo {
	st.mu.Lock()
	subs := make([]model.Ref, 0, len(st.subs))
	for r := range st.subs {
		subs = append(subs, r)
	}
	st.mu.Unlock()
	slices.SortFunc(subs, model.CompareRefs)
	return ProxyInfo{Workload: st.workload, Peer: st.peer, Subscriptions: subs, Version: st.version.Load(), Since: st.since}
}

// Stream serves one proxy.
func (s *Server) Stream(srv meshv1.Discovery_StreamServer) error {
	obs := s.observer()
	st, first, err := s.accept(srv)
	if err != nil {
		obs.StreamStarted(startOutcome(err))
		return err
	}
	defer s.remove(st)
	obs.StreamStarted(OutcomeOK)
	log := s.logger.With("workload", st.workload.String(), "peer", st.peer)
	log.Info("proxy connected", "subscriptions", len(first.GetSubscribe()))

	ctx, cancel := context.WithCancelCause(srv.Context())
	defer cancel(nil)
	go func() { cancel(s.receive(srv, st)) }()
	err = s.send(ctx, srv, st)
	if errors.Is(err, io.EOF) {
		err = nil // the proxy closed its side: a clean goodbye
	}
	log.Info("proxy disconnected", "after", s.now().Sub(st.since).Round(time.Millisecond), "version", st.version.Load(), "err", err)
	obs.StreamEnded(endOutcome(err))
	return err
}

// accept reads a stream's first request and, when the caller may be the
// proxy of the workload it names, adds the stream with its first
// subscriptions. The caller removes it when it ends.
func (s *Server) accept(srv meshv1.Discovery_StreamServer) (*stream, *meshv1.StreamRequest, error) {
	first, err := srv.Recv()
	if err != nil {
		return nil, nil, err
	}
	if first.GetWorkload() == nil {
		return nil, nil, status.Error(codes.InvalidArgument, "workload: the first request must name the proxy's workload")
	}
	ref, err := wire.ValidRefFromProto(first.GetWorkload())
	if err != nil {
		return nil, nil, status.Errorf(codes.InvalidArgument, "workload: %v", err)
	}
	st := &stream{
		workload: ref,
		since:    s.now(),
		notify:   make(chan struct{}, 1),
		subs:     map[model.Ref]struct{}{},
		dirty:    map[model.Ref]struct{}{},
		dropped:  map[model.Ref]struct{}{},
	}
	if p, ok := peer.FromContext(srv.Context()); ok {
		st.peer = p.Addr.String()
	}
	if err := s.authorize(srv.Context(), ref, nil); err != nil {
		return nil, nil, err
	}
	if err := s.add(st); err != nil {
		return nil, nil, err
	}
	if err := s.update(st, first); err != nil {
		s.remove(st)
		return nil, nil, err
	}
	if first.GetSubscribeAll() {
		s.subscribeAll(st)
	}
	return st, first, nil
}

// subscribeAll subscribes st to every service of the mesh, and to each
// new one as the watcher sees it appear.
func (s *Server) subscribeAll(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.removed {
		return
	}
	s.everything[st] = struct{}{}
	st.mu.Lock()
	for _, svc := range s.current.Load().Services() {
		s.subscribeLocked(st, svc.Service.Ref)
	}
	st.mu.Unlock()
	st.wake()
}

// subscribeLocked subscribes st to r; s.mu and st.mu are held.
func (s *Server) subscribeLocked(st *stream, r model.Ref) {
	if _, ok := st.subs[r]; ok {
		return
	}
	st.subs[r] = struct{}{}
	st.dirty[r] = struct{}{}
	index(s.byService, r, st)
}

// receive applies the proxy's later requests until the stream ends.
func (s *Server) receive(srv meshv1.Discovery_StreamServer, st *stream) error {
	for {
		req, err := srv.Recv()
		if err != nil {
			return err
		}
		if req.GetWorkload() != nil && wire.RefFromProto(req.GetWorkload()) != st.workload {
			return status.Errorf(codes.InvalidArgument, "workload: a stream serves one workload (%s), got %s", st.workload, wire.RefFromProto(req.GetWorkload()))
		}
		if err := s.update(st, req); err != nil {
			return err
		}
	}
}

// send pushes responses until the stream ends.
func (s *Server) send(ctx context.Context, srv meshv1.Discovery_StreamServer, st *stream) error {
	obs := s.observer()
	sent := NewSent()
	var check []model.Ref
	var bundleSent uint64
	for {
		check = check[:0]
		st.mu.Lock()
		pending := st.pending
		st.pending = time.Time{}
		for r := range st.dropped {
			sent.Forget(r)
		}
		clear(st.dropped)
		for r := range st.dirty {
			if _, ok := st.subs[r]; ok {
				check = append(check, r)
			}
		}
		clear(st.dirty)
		st.mu.Unlock()

		snap := s.current.Load()
		resp, patch := Diff(sent, snap, st.workload, check)
		if resp.GetWorkload() != nil {
			w, _ := snap.Workload(st.workload)
			if err := s.authorize(ctx, st.workload, w); err != nil {
				return err
			}
		}
		if s.Bundle != nil {
			if roots, version := s.Bundle(); version != bundleSent {
				if resp == nil {
					resp = &meshv1.StreamResponse{Version: st.version.Load()}
				}
				resp.TrustBundle, resp.BundleVersion = roots, version
				bundleSent = version
			}
		}
		if resp != nil {
			err := srv.Send(resp)
			push := Push{Full: patch.Full, Err: err}
			if err == nil && !pending.IsZero() {
				push.FromSnapshot, push.Lag = true, s.now().Sub(pending)
			}
			obs.Pushed(push)
			if err != nil {
				return err
			}
			st.version.Store(resp.GetVersion())
		}
		sent.Apply(patch)

		select {
		case <-st.notify:
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.done:
			return errShuttingDown
		}
	}
}

func (s *Server) authorize(ctx context.Context, ref model.Ref, w *model.Workload) error {
	if s.Authorize == nil {
		return nil
	}
	if err := s.Authorize(ctx, ref, w); err != nil {
		s.logger.Warn("proxy refused", "workload", ref.String(), "err", err)
		return status.Errorf(codes.PermissionDenied, "workload %s: %v", ref, err)
	}
	return nil
}

// BundleChanged wakes every stream to send the new trust bundle.
func (s *Server) BundleChanged() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for st := range s.streams {
		st.wake()
	}
}

// update applies one request's subscription changes. Unsubscribes go
// first, so a request that drops and adds the same service asks for a
// fresh full state.
func (s *Server) update(st *stream, req *meshv1.StreamRequest) error {
	unsub, err := validRefs("unsubscribe", req.GetUnsubscribe())
	if err != nil {
		return err
	}
	sub, err := validRefs("subscribe", req.GetSubscribe())
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.removed {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, r := range unsub {
		if _, ok := st.subs[r]; !ok {
			continue
		}
		delete(st.subs, r)
		st.dropped[r] = struct{}{}
		unindex(s.byService, r, st)
	}
	for _, r := range sub {
		if _, ok := st.subs[r]; ok {
			continue
		}
		if len(st.subs) >= MaxSubscriptions {
			return status.Errorf(codes.ResourceExhausted, "subscribe: at most %d services per stream", MaxSubscriptions)
		}
		s.subscribeLocked(st, r)
	}
	st.wake()
	return nil
}

func validRefs(field string, refs []*meshv1.Ref) ([]model.Ref, error) {
	out := make([]model.Ref, 0, len(refs))
	for i, pr := range refs {
		r, err := wire.ValidRefFromProto(pr)
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "%s[%d]: %v", field, i, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *Server) add(st *stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errShuttingDown
	}
	if len(s.streams) == 0 {
		snap := s.store.Snapshot()
		s.current.Store(snap)
		s.stopWatch = make(chan struct{})
		go s.watch(snap, s.stopWatch)
	}
	s.streams[st] = struct{}{}
	index(s.byWorkload, st.workload, st)
	return nil
}

func (s *Server) remove(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.removed = true
	delete(s.streams, st)
	delete(s.everything, st)
	unindex(s.byWorkload, st.workload, st)
	st.mu.Lock()
	for r := range st.subs {
		unindex(s.byService, r, st)
	}
	st.mu.Unlock()
	if len(s.streams) == 0 {
		close(s.stopWatch)
	}
}

func index(idx map[model.Ref]map[*stream]struct{}, r model.Ref, st *stream) {
	set := idx[r]
	if set == nil {
		set = map[*stream]struct{}{}
		idx[r] = set
	}
	set[st] = struct{}{}
}

func unindex(idx map[model.Ref]map[*stream]struct{}, r model.Ref, st *stream) {
	delete(idx[r], st)
	if len(idx[r]) == 0 {
		delete(idx, r)
	}
}

// watch marks, for each new snapshot, the streams it concerns. Its work per
// snapshot is that of the namespaces the snapshot changed (the model
// lists what changed, comparing namespaces before objects) and one
// wake-up per concerned stream, whatever the number of streams and
// subscriptions; streams that subscribe to nothing that changed are not
// woken.
func (s *Server) watch(snap *model.Snapshot, stop <-chan struct{}) {
	for {
		select {
		case <-snap.Superseded():
		case <-stop:
			return
		}
		// The model has no publish time; this is within a wake-up of it,
		// and is where the push latency starts.
		seen := s.now()
		next := s.store.Snapshot()
		s.mu.Lock()
		select {
		case <-stop:
			// A watcher for new streams may have started; leave current to it.
			s.mu.Unlock()
			return
		default:
		}
		// Publish before marking: a stream that takes a mark must find the
		// snapshot that caused it.
		s.current.Store(next)
		changed := next.ServicesChanged(snap)
		if len(s.everything) > 0 {
			// New services join the streams that want every service; the
			// loop below then sends them.
			for _, r := range changed {
				if _, ok := next.Service(r); !ok {
					continue
				}
				if _, ok := snap.Service(r); ok {
					continue
				}
				for st := range s.everything {
					st.mu.Lock()
					s.subscribeLocked(st, r)
					st.mu.Unlock()
				}
			}
		}
		for _, r := range changed {
			for st := range s.byService[r] {
				st.touch(r, seen)
			}
		}
		for _, r := range next.WorkloadsChanged(snap) {
			for st := range s.byWorkload[r] {
				st.changed(seen)
			}
		}
		s.mu.Unlock()
		snap = next
	}
}
