package controlplane

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/weftmesh/weft/internal/source/kube"
)

// LeaderElection has the control plane's replicas elect one, through a
// Lease, to run the tasks only one may run at a time (leaderTasks). Every
// replica serves proxies, the webhook and the admin API.
type LeaderElection struct {
	// Lease names the Lease, in Options.Namespace. It must exist: weft
	// install renders it, so the control plane needs only get and update.
	Lease string
	// Identity is this replica's name in the Lease (its Pod's name).
	Identity string
	// LeaseDuration, RenewDeadline and RetryPeriod are client-go's; zero
	// means 15s, 10s and 2s. A leader that stops cleanly gives the Lease
	// up, so another takes over within RetryPeriod; one that dies, within
	// LeaseDuration.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

func (le LeaderElection) withDefaults() LeaderElection {
	if le.LeaseDuration == 0 {
		le.LeaseDuration = 15 * time.Second
	}
	if le.RenewDeadline == 0 {
		le.RenewDeadline = 10 * time.Second
	}
	if le.RetryPeriod == 0 {
		le.RetryPeriod = 2 * time.Second
	}
	return le
}

// Leadership is what `weft status` shows of leader election.
type Leadership struct {
	// Lease is namespace/name; empty when the control plane runs alone,
	// with no election, and leads.
	Lease string `json:"lease,omitempty"`
	// Identity is this replica's name in the Lease.
	Identity string `json:"identity,omitempty"`
	// Leading is whether this replica runs the single-writer tasks.
	Leading bool `json:"leading"`
	// Leader is the holder of the Lease as this replica last saw it.
	Leader string `json:"leader,omitempty"`
}

// leaderTask is work that only one replica may do at a time, because it
// writes to the API server and two writers would fight.
type leaderTask struct {
	name string
	// run works until ctx ends; an error ends the control plane.
	run func(ctx context.Context) error
}

// leaderTasks are the control plane's single-writer tasks, run by the
// leader only. Add a writer here.
func (cp *ControlPlane) leaderTasks() []leaderTask {
	if cp.kube == nil {
		return nil
	}
	return []leaderTask{
		{"CA bundle ConfigMaps", cp.bundles.run},
		{"route and policy status", kube.NewStatusWriter(cp.kube).Run},
	}
}

// leadership reports this replica's part in leader election.
func (cp *ControlPlane) leadership() Leadership {
	l := Leadership{Leading: cp.leading.Load()}
	if le := cp.opts.LeaderElection; le != nil {
		l.Lease, l.Identity = cp.opts.Namespace+"/"+le.Lease, le.Identity
		l.Leader, _ = cp.leader.Load().(string)
	}
	return l
}

// lead runs the leader tasks until ctx ends: at once when there is no
// election, otherwise whenever this replica holds the Lease, campaigning
// again after losing it. An error is a task's.
func (cp *ControlPlane) lead(ctx context.Context) error {
	tasks := cp.leaderTasks()
	if len(tasks) == 0 {
		return nil
	}
	if cp.opts.LeaderElection == nil {
		cp.leading.Store(true)
		defer cp.leading.Store(false)
		return runLeaderTasks(ctx, tasks)
	}
	for {
		err := cp.campaign(ctx, tasks)
		if err != nil || ctx.Err() != nil {
			return err
		}
	}
}

// campaign waits to lead, then runs tasks until the Lease is lost or ctx
// ends, and gives the Lease up only once the tasks have returned, so that
// no other replica writes while this one still does.
func (cp *ControlPlane) campaign(ctx context.Context, tasks []leaderTask) error {
	le := cp.opts.LeaderElection.withDefaults()
	log := cp.opts.Logger.With("component", "leader-election", "lease", cp.opts.Namespace+"/"+le.Lease, "identity", le.Identity)
	// The elector's context outlives ctx: cancelling it releases the
	// Lease, which must wait for the tasks.
	electCtx, stopElect := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElect()
	var started atomic.Bool
	tasksDone := make(chan error, 1)
	lock := &releaseAfterTasks{
		Interface: &resourcelock.LeaseLock{
			LeaseMeta:  metav1.ObjectMeta{Namespace: cp.opts.Namespace, Name: le.Lease},
			Client:     cp.client.CoordinationV1(),
			LockConfig: resourcelock.ResourceLockConfig{Identity: le.Identity},
		},
		ended: make(chan struct{}),
	}
	stop := context.AfterFunc(ctx, func() {
		if !started.Load() {
			stopElect()
		}
	})
	defer stop()
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Lease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leadCtx context.Context) {
				started.Store(true)
				taskCtx, cancel := context.WithCancel(leadCtx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				lock.started(cancel)
				cp.leading.Store(true)
				log.Info("leading: running the single-writer tasks", "tasks", len(tasks))
				err := runLeaderTasks(taskCtx, tasks)
				cp.leading.Store(false)
				close(lock.ended)
				log.Info("stopped leading: the single-writer tasks have ended")
				tasksDone <- err
				stopElect()
			},
			// Called once the Lease is given up, which waits for the tasks
			// (releaseAfterTasks).
			OnStoppedLeading: func() { cp.leading.Store(false) },
			OnNewLeader: func(id string) {
				cp.leader.Store(id)
				log.Info("new leader", "leader", id)
			},
		},
	})
	if err != nil {
		return fmt.Errorf("leader election on Lease %s/%s: %w", cp.opts.Namespace, le.Lease, err)
	}
	elector.Run(electCtx)
	if !started.Load() {
		return nil
	}
	err = <-tasksDone
	if ctx.Err() == nil && err == nil {
		log.Warn("lost the Lease; campaigning again")
	}
	return err
}

func runLeaderTasks(ctx context.Context, tasks []leaderTask) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, t := range tasks {
		g.Go(func() error {
			if err := t.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("%s: %w", t.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// releaseAfterTasks is the Lease lock, but giving the Lease up (an update
// that names no holder) first stops the leader tasks and waits for them.
// client-go gives it up as soon as a renewal fails, while the tasks may
// still be writing; another replica could then lead, and write, within a
// retry period.
type releaseAfterTasks struct {
	resourcelock.Interface
	mu     sync.Mutex
	cancel context.CancelFunc
	// ended is closed when the tasks have returned.
	ended chan struct{}
}

// started records how to stop the tasks that have just started.
func (l *releaseAfterTasks) started(cancel context.CancelFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cancel = cancel
}

// Update implements resourcelock.Interface.
func (l *releaseAfterTasks) Update(ctx context.Context, record resourcelock.LeaderElectionRecord) error {
	if record.HolderIdentity == "" {
		l.mu.Lock()
		cancel := l.cancel
		l.mu.Unlock()
		if cancel != nil {
			cancel()
			select {
			case <-l.ended:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return l.Interface.Update(ctx, record)
}
