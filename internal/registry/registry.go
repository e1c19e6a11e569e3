package registry

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// Source is the store source name of registered workloads.
const Source = "registration"

// Defaults for Options.
const (
	DefaultTTL = 30 * time.Second
	// MaxLeases is the default bound on registered workloads, so a client
	// of the registration API cannot grow the control plane without limit.
	MaxLeases = 10000
	MaxTTL    = 5 * time.Minute
)

// Options configure a Registry.
type Options struct {
	Logger *slog.Logger
	// StatePath is the file registrations are kept in across restarts; ""
	// keeps them in memory only.
	StatePath string
	// MaxTTL caps the lease a workload may ask for; DefaultTTL is what it
	// gets when it asks for none. Zero means the package defaults.
	MaxTTL, DefaultTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxLeases bounds the registered workloads; zero means MaxLeases.
	MaxLeases int
	// Authorize, when set, decides whether the caller may register w; an
	// error refuses the registration with PERMISSION_DENIED.
	Authorize func(ctx context.Context, w *model.Workload) error
}

// Registry is the Registration gRPC service.
type Registry struct {
	meshv1.UnimplementedRegistrationServer

	store *model.Store
	opts  Options
	log   *slog.Logger

	// mu is held across store changes, so the store and the lease table
	// change together.
	mu     sync.Mutex
	leases map[string]*lease
	byRef  map[model.Ref]*lease
	// gen counts changes to the lease table (under mu); savedGen is the
	// last one on disk (under saveMu). See save.
	gen      uint64
	saveMu   sync.Mutex
	savedGen uint64
}

var _ meshv1.RegistrationServer = (*Registry)(nil)

type lease struct {
	id       string
	workload *model.Workload
	// saved is the workload as the state file holds it, encoded once.
	saved   []byte
	ttl     time.Duration
	expires time.Time
}

// New returns a registry that puts workloads into store. With a state
// path, it first restores the registrations saved there.
func New(store *model.Store, opts Options) (*Registry, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxLeases <= 0 {
		opts.MaxLeases = MaxLeases
	}
	if opts.MaxTTL == 0 {
		opts.MaxTTL = MaxTTL
	}
	if opts.DefaultTTL == 0 {
		opts.DefaultTTL = min(DefaultTTL, opts.MaxTTL)
	}
	if opts.MaxTTL < time.Second || opts.DefaultTTL < time.Second || opts.DefaultTTL > opts.MaxTTL {
		return nil, fmt.Errorf("registry: want 1s <= DefaultTTL (%v) <= MaxTTL (%v)", opts.DefaultTTL, opts.MaxTTL)
	}
	r := &Registry{
		store:  store,
		opts:   opts,
		log:    opts.Logger.With("component", "registry"),
		leases: map[string]*lease{},
		byRef:  map[model.Ref]*lease{},
	}
	if opts.StatePath != "" {
		if err := r.restore(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Run expires lapsed leases until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	// Leases are whole seconds; checking a few times a second is exact
	// enough and costs one pass over the leases.
	tick := time.NewTicker(min(r.opts.DefaultTTL/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			r.expire()
		}
	}
}

// Register puts a workload into the mesh under a new lease. A workload
// already registered under another lease is taken over: that is how a
// restarted proxy, which lost its lease ID, gets its place back.
func (r *Registry) Register(ctx context.Context, req *meshv1.RegisterRequest) (*meshv1.RegisterResponse, error) {
	w, err := wire.WorkloadFromProto(req.GetWorkload())
	if err != nil {
		return nil, invalidArgument(err)
	}
	if r.opts.Authorize != nil {
		if err := r.opts.Authorize(ctx, w); err != nil {
			r.log.Warn("registration refused", "workload", w.Ref.String(), "err", err)
			return nil, status.Errorf(codes.PermissionDenied, "register workload %s: %v", w.Ref, err)
		}
	}
	ttl := r.opts.DefaultTTL
	if s := req.GetTtlSeconds(); s > 0 {
		ttl = min(time.Duration(s)*time.Second, r.opts.MaxTTL)
	}
	saved, err := encodeWorkload(w)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "register workload %s: %v", w.Ref, err)
	}
	l := &lease{id: rand.Text(), workload: w, saved: saved, ttl: ttl}

	gen, err := r.register(l)
	if err != nil {
		return nil, err
	}
	r.save(gen)
	return &meshv1.RegisterResponse{LeaseId: l.id, TtlSeconds: seconds(ttl)}, nil
}

func (r *Registry) register(l *lease) (gen uint64, err error) {
	w := l.workload
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, renewing := r.byRef[w.Ref]; !renewing && len(r.leases) >= r.opts.MaxLeases {
		r.log.Warn("registration refused: too many registered workloads", "workload", w.Ref.String(), "max", r.opts.MaxLeases)
		return 0, status.Errorf(codes.ResourceExhausted, "register workload %s: the control plane holds its maximum of %d registered workloads", w.Ref, r.opts.MaxLeases)
	}
	if owner, ok := r.store.WorkloadOwner(w.Ref); ok && owner != Source {
		r.log.Warn("registration refused: workload declared by another source", "workload", w.Ref.String(), "owner", owner)
		return 0, status.Errorf(codes.AlreadyExists, "workload %s is already declared by another source", w.Ref)
	}
	if err := r.store.Apply(Source, model.Changes{PutWorkloads: []*model.Workload{w}}); err != nil {
		if errors.Is(err, model.ErrOwnedElsewhere) {
			return 0, status.Errorf(codes.AlreadyExists, "workload %s is already declared by another source", w.Ref)
		}
		return 0, status.Errorf(codes.Internal, "register workload %s: %v", w.Ref, err)
	}
	old := r.byRef[w.Ref]
	if old != nil {
		delete(r.leases, old.id)
	}
	l.expires = r.opts.Now().Add(l.ttl)
	r.leases[l.id] = l
	r.byRef[w.Ref] = l
	r.log.Info("workload registered", "workload", w.Ref.String(), "address", w.Address, "ttl", l.ttl, "replaced", old != nil)
	return r.changedLocked(), nil
}

// Renew extends a lease by its TTL.
func (r *Registry) Renew(_ context.Context, req *meshv1.RenewRequest) (*meshv1.RenewResponse, error) {
	var ttl time.Duration
	err := r.withLease(req.GetLeaseId(), func(l *lease) (changed bool) {
		l.expires = r.opts.Now().Add(l.ttl)
		ttl = l.ttl
		// Renewals are not saved: a restart grants a full TTL anyway.
		return false
	})
	if err != nil {
		return nil, err
	}
	return &meshv1.RenewResponse{TtlSeconds: seconds(ttl)}, nil
}

// Deregister removes a lease and its workload.
func (r *Registry) Deregister(_ context.Context, req *meshv1.DeregisterRequest) (*meshv1.DeregisterResponse, error) {
	err := r.withLease(req.GetLeaseId(), func(l *lease) (changed bool) {
		r.dropLocked(l)
		r.log.Info("workload deregistered", "workload", l.workload.Ref.String())
		return true
	})
	if err != nil {
		return nil, err
	}
	return &meshv1.DeregisterResponse{}, nil
}

// withLease runs f on a lease that has not lapsed, under mu, and saves if
// f changed anything. A lapsed lease the sweep has not reached yet is
// dropped now, so Renew cannot revive it.
func (r *Registry) withLease(id string, f func(*lease) (changed bool)) error {
	gen, err := func() (uint64, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		l := r.leases[id]
		if l == nil {
			return 0, status.Error(codes.NotFound, "no such lease: register again")
		}
		if !r.opts.Now().Before(l.expires) {
			r.dropLocked(l)
			r.log.Info("registration lapsed", "workload", l.workload.Ref.String())
			return r.changedLocked(), status.Error(codes.NotFound, "lease lapsed: register again")
		}
		if f(l) {
			return r.changedLocked(), nil
		}
		return 0, nil
	}()
	r.save(gen)
	return err
}

// expire drops every lapsed lease.
func (r *Registry) expire() {
	r.save(r.dropLapsed())
}

// dropLapsed removes the lapsed leases and returns the generation to save.
func (r *Registry) dropLapsed() (gen uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	var lapsed []*lease
	for _, l := range r.leases {
		if !now.Before(l.expires) {
			lapsed = append(lapsed, l)
		}
	}
	if len(lapsed) == 0 {
		return 0
	}
	var refs []model.Ref
	for _, l := range lapsed {
		delete(r.leases, l.id)
		delete(r.byRef, l.workload.Ref)
		refs = append(refs, l.workload.Ref)
		r.log.Info("registration lapsed", "workload", l.workload.Ref.String())
	}
	if err := r.store.Apply(Source, model.Changes{DeleteWorkloads: refs}); err != nil {
		r.log.Error("removing lapsed workloads", "err", err)
	}
	return r.changedLocked()
}

// changedLocked records a change to the lease table and returns its
// generation, for save.
func (r *Registry) changedLocked() uint64 {
	r.gen++
	return r.gen
}

// dropLocked removes a lease and its workload; the caller saves.
func (r *Registry) dropLocked(l *lease) {
	delete(r.leases, l.id)
	if r.byRef[l.workload.Ref] == l {
		delete(r.byRef, l.workload.Ref)
	}
	if err := r.store.Apply(Source, model.Changes{DeleteWorkloads: []model.Ref{l.workload.Ref}}); err != nil {
		r.log.Error("removing workload", "workload", l.workload.Ref.String(), "err", err)
	}
}

// seconds is a TTL as the API carries it: whole seconds, rounded down so
// a client renewing at a fraction of it is never late.
func seconds(d time.Duration) uint32 {
	return uint32(max(d/time.Second, 1))
}

// invalidArgument makes a validation error an INVALID_ARGUMENT status, with
// each field problem also as a BadRequest detail for clients that read
// them.
func invalidArgument(err error) error {
	st := status.New(codes.InvalidArgument, err.Error())
	var br errdetails.BadRequest
	for _, fe := range fieldErrors(err) {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: fe.Field, Description: fe.Msg})
	}
	if len(br.FieldViolations) > 0 {
		if withDetails, derr := st.WithDetails(&br); derr == nil {
			st = withDetails
		}
	}
	return st.Err()
}

// fieldErrors collects the field errors in an error tree; errors.As would
// find only the first of a joined list.
func fieldErrors(err error) []*model.FieldError {
	switch u := err.(type) { //nolint:errorlint // walking the tree by hand is the point
	case *model.FieldError:
		return []*model.FieldError{u}
	case interface{ Unwrap() []error }:
		var out []*model.FieldError
		for _, e := range u.Unwrap() {
			out = append(out, fieldErrors(e)...)
		}
		return out
	case interface{ Unwrap() error }:
		return fieldErrors(u.Unwrap())
	}
	return nil
}
