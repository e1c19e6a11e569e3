package control

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// Lease is a workload's registration with the control plane.
type Lease struct {
	api      meshv1.RegistrationClient
	workload *model.Workload
	askTTL   time.Duration
	log      *slog.Logger

	mu           sync.Mutex
	id           string
	ttl          time.Duration
	deregistered bool
}

// Register registers a workload for the given TTL (0 lets the control
// plane choose; it may also shorten it). It waits for the control plane
// to be reachable, up to ctx's deadline; the control plane's refusals
// (invalid workload, a workload another source declares) come back at once.
func Register(ctx context.Context, conn grpc.ClientConnInterface, w *model.Workload, ttl time.Duration, logger *slog.Logger) (*Lease, error) {
	if err := w.Validate(); err != nil {
		return nil, fmt.Errorf("register workload %s: %w", w.Ref, err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	l := &Lease{
		api:      meshv1.NewRegistrationClient(conn),
		workload: w,
		askTTL:   ttl,
		log:      logger.With("component", "control", "workload", w.Ref.String()),
	}
	if err := l.register(ctx); err != nil {
		return nil, err
	}
	l.log.Info("workload registered", "ttl", l.ttl)
	return l, nil
}

func (l *Lease) register(ctx context.Context) error {
	resp, err := l.api.Register(ctx, &meshv1.RegisterRequest{
		Workload:   wire.WorkloadToProto(l.workload),
		TtlSeconds: uint32(l.askTTL / time.Second),
	}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("register workload %s: %w", l.workload.Ref, err)
	}
	l.mu.Lock()
	l.id = resp.GetLeaseId()
	l.ttl = time.Duration(resp.GetTtlSeconds()) * time.Second
	l.mu.Unlock()
	return nil
}

// Keep renews the lease at about a third of its TTL until ctx ends. When
// the control plane has forgotten the lease (it lapsed, or the control
// plane restarted without its state), Keep registers again; when the
// control plane is unreachable, it keeps trying with backoff. It returns
// nil when ctx ends or the lease is deregistered, or an error retrying
// cannot fix (the control plane finds the workload invalid).
func (l *Lease) Keep(ctx context.Context) error {
	var bo backoffTimer
	wait := l.renewInterval()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		err := l.renew(ctx)
		switch {
		case err == nil:
			bo.reset()
			wait = l.renewInterval()
		case ctx.Err() != nil:
			return nil
		case status.Code(err) == codes.InvalidArgument:
			return err
		default:
			wait = min(bo.next(), l.renewInterval())
			l.log.Warn("lease renewal failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		}
		if l.isDeregistered() {
			return nil
		}
	}
}

// renew renews once, registering again if the lease is gone.
func (l *Lease) renew(ctx context.Context) error {
	l.mu.Lock()
	id, ttl, done := l.id, l.ttl, l.deregistered
	l.mu.Unlock()
	if done {
		return nil
	}
	// A call that outlasts a third of the TTL is as good as failed: give
	// the next try time to land before the lease lapses.
	ctx, cancel := context.WithTimeout(ctx, max(ttl/3, time.Second))
	defer cancel()
	resp, err := l.api.Renew(ctx, &meshv1.RenewRequest{LeaseId: id})
	switch status.Code(err) {
	case codes.OK:
		l.mu.Lock()
		l.ttl = time.Duration(resp.GetTtlSeconds()) * time.Second
		l.mu.Unlock()
		return nil
	case codes.NotFound:
		l.log.Info("control plane forgot the lease; registering again")
		if err := l.register(ctx); err != nil {
			return err
		}
		if l.isDeregistered() {
			// Deregister ran while we registered: undo ours.
			return l.Deregister(ctx)
		}
		return nil
	}
	return fmt.Errorf("renew lease of %s: %w", l.workload.Ref, err)
}

// Deregister removes the workload from the mesh and stops Keep renewing.
// A lease the control plane no longer knows counts as removed.
func (l *Lease) Deregister(ctx context.Context) error {
	l.mu.Lock()
	l.deregistered = true
	id := l.id
	l.mu.Unlock()
	_, err := l.api.Deregister(ctx, &meshv1.DeregisterRequest{LeaseId: id})
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("deregister workload %s: %w", l.workload.Ref, err)
	}
	l.log.Info("workload deregistered")
	return nil
}

func (l *Lease) isDeregistered() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deregistered
}

func (l *Lease) renewInterval() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(l.ttl/3, 100*time.Millisecond)
}
