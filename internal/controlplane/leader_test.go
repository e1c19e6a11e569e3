package controlplane

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// recordingLock is the Lease lock's Update, recorded; releaseAfterTasks
// calls nothing else of it.
type recordingLock struct {
	resourcelock.Interface
	mu     *sync.Mutex
	events *[]string
}

func (l recordingLock) Update(_ context.Context, r resourcelock.LeaderElectionRecord) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	*l.events = append(*l.events, "update holder="+r.HolderIdentity)
	return nil
}

// TestReleaseAfterTasks: giving the Lease up stops the leader tasks and
// waits until they have returned; renewing it does not touch them.
func TestReleaseAfterTasks(t *testing.T) {
	var mu sync.Mutex
	var events []string
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, e)
	}
	lock := &releaseAfterTasks{Interface: recordingLock{mu: &mu, events: &events}, ended: make(chan struct{})}
	taskCtx, cancel := context.WithCancel(t.Context())
	lock.started(cancel)
	go func() {
		<-taskCtx.Done()
		// A task finishing its last write after it was told to stop.
		time.Sleep(50 * time.Millisecond)
		record("tasks ended")
		close(lock.ended)
	}()

	if err := lock.Update(t.Context(), resourcelock.LeaderElectionRecord{HolderIdentity: "replica-a"}); err != nil {
		t.Fatal(err)
	}
	if taskCtx.Err() != nil {
		t.Fatal("renewing the Lease stopped the tasks")
	}
	if err := lock.Update(t.Context(), resourcelock.LeaderElectionRecord{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"update holder=replica-a", "tasks ended", "update holder="}; !slices.Equal(events, want) {
		t.Errorf("events %q, want %q: the Lease was given up before the tasks had ended", events, want)
	}
}
