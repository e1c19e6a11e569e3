package registry

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func vm(name string) *model.Workload {
	return &model.Workload{
		Ref:         model.Ref{Namespace: "vms", Name: name},
		Labels:      map[string]string{"app": "billing"},
		Address:     "198.18.1.10",
		InboundPort: 4143,
		Ports:       []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP1}},
	}
}

func register(t *testing.T, r *Registry, w *model.Workload, ttl uint32) *meshv1.RegisterResponse {
	t.Helper()
	resp, err := r.Register(context.Background(), &meshv1.RegisterRequest{Workload: wire.WorkloadToProto(w), TtlSeconds: ttl})
	if err != nil {
		t.Fatalf("register %s: %v", w.Ref, err)
	}
	return resp
}

func newRegistry(t *testing.T, store *model.Store, clk *clock, path string) *Registry {
	t.Helper()
	r, err := New(store, Options{Logger: testLogger(t), StatePath: path, DefaultTTL: 30 * time.Second, MaxTTL: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func inStore(store *model.Store, w *model.Workload) bool {
	got, ok := store.Snapshot().Workload(w.Ref)
	return ok && got.Equal(w)
}

func wantCode(t *testing.T, err error, code codes.Code) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("got %v, want %v", err, code)
	}
}

func TestRegister(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r := newRegistry(t, store, clk, "")

	resp := register(t, r, vm("billing-1"), 0)
	if resp.GetTtlSeconds() != 30 {
		t.Errorf("ttl %d, want the default 30", resp.GetTtlSeconds())
	}
	if len(resp.GetLeaseId()) < 20 {
		t.Errorf("lease ID %q is too short to be unguessable", resp.GetLeaseId())
	}
	if !inStore(store, vm("billing-1")) {
		t.Error("workload not in the store")
	}
	if owner, _ := store.WorkloadOwner(vm("billing-1").Ref); owner != Source {
		t.Errorf("owner %q", owner)
	}
	if got := register(t, r, vm("billing-2"), 3600).GetTtlSeconds(); got != 60 {
		t.Errorf("ttl %d, want it capped at 60", got)
	}
	if got := register(t, r, vm("billing-3"), 5).GetTtlSeconds(); got != 5 {
		t.Errorf("ttl %d, want the 5 asked for", got)
	}
	if register(t, r, vm("billing-4"), 0).GetLeaseId() == resp.GetLeaseId() {
		t.Error("lease IDs repeat")
	}
}

func TestRegisterInvalid(t *testing.T) {
	for _, tc := range []struct {
		desc  string
		edit  func(*meshv1.Workload)
		field string
	}{
		{"no workload", nil, "workload: must be set"},
		{"bad name", func(w *meshv1.Workload) { w.Ref.Name = "Billing" }, "metadata"},
		{"no address", func(w *meshv1.Workload) { w.Address = "" }, "spec.address"},
		{"bad inbound port", func(w *meshv1.Workload) { w.InboundPort = 70000 }, "spec.proxy.inboundPort"},
		{"unknown protocol", func(w *meshv1.Workload) { w.Ports[0].Protocol = 9 }, "spec.ports[0].protocol"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			store := model.NewStore()
			r := newRegistry(t, store, newClock(), "")
			req := &meshv1.RegisterRequest{}
			if tc.edit != nil {
				req.Workload = wire.WorkloadToProto(vm("billing-1"))
				tc.edit(req.Workload)
			}
			_, err := r.Register(context.Background(), req)
			wantCode(t, err, codes.InvalidArgument)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("%v does not name %s", err, tc.field)
			}
			if tc.edit != nil {
				var fields []string
				for _, d := range status.Convert(err).Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, v := range br.GetFieldViolations() {
							fields = append(fields, v.GetField())
						}
					}
				}
				if !strings.Contains(strings.Join(fields, " "), tc.field) {
					t.Errorf("BadRequest details %v do not name %s", fields, tc.field)
				}
			}
			if len(store.Snapshot().Workloads()) != 0 {
				t.Error("an invalid workload reached the store")
			}
		})
	}
}

func TestRegisterConflictsWithAnotherSource(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	declared := vm("billing-1")
	declared.Address = "198.18.1.99"
	if err := store.Apply("manifests/billing.yaml", model.Changes{PutWorkloads: []*model.Workload{declared}}); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, store, clk, "")
	_, err := r.Register(context.Background(), &meshv1.RegisterRequest{Workload: wire.WorkloadToProto(vm("billing-1"))})
	wantCode(t, err, codes.AlreadyExists)
	if strings.Contains(err.Error(), "manifests/") {
		t.Errorf("error tells an unauthenticated caller where manifests live: %v", err)
	}
	if !inStore(store, declared) {
		t.Error("the declared workload was replaced")
	}
}

func TestReregisterReplaces(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r := newRegistry(t, store, clk, "")
	first := register(t, r, vm("billing-1"), 0)
	moved := vm("billing-1")
	moved.Address = "198.18.1.11"
	second := register(t, r, moved, 0)
	if !inStore(store, moved) {
		t.Error("the new registration did not replace the workload")
	}
	_, err := r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: first.GetLeaseId()})
	wantCode(t, err, codes.NotFound)
	if _, err := r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: second.GetLeaseId()}); err != nil {
		t.Fatal(err)
	}
	// The old lease lapsing must not take the new registration with it.
	clk.Advance(time.Hour)
	r.expire()
	if inStore(store, moved) {
		t.Error("lapsed registration still in the store")
	}
}

func TestRenewAndExpiry(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r := newRegistry(t, store, clk, "")
	w := vm("billing-1")
	lease := register(t, r, w, 10).GetLeaseId()

	for range 5 {
		clk.Advance(9 * time.Second)
		r.expire()
		if _, err := r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: lease}); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	if !inStore(store, w) {
		t.Fatal("a renewed lease lapsed")
	}
	clk.Advance(10 * time.Second)
	r.expire()
	if inStore(store, w) {
		t.Fatal("a lapsed lease's workload is still in the store")
	}
	_, err := r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: lease})
	wantCode(t, err, codes.NotFound)
	_, err = r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: "nonsense"})
	wantCode(t, err, codes.NotFound)
}

func TestRenewAfterLapseBeforeSweep(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r := newRegistry(t, store, clk, "")
	w := vm("billing-1")
	lease := register(t, r, w, 10).GetLeaseId()
	clk.Advance(11 * time.Second)
	_, err := r.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: lease})
	wantCode(t, err, codes.NotFound)
	if inStore(store, w) {
		t.Error("renewing a lapsed lease left its workload")
	}
}

func TestRunExpires(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r, err := New(store, Options{Logger: testLogger(t), DefaultTTL: 2 * time.Second, MaxTTL: time.Minute, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	w := vm("billing-1")
	register(t, r, w, 0)
	clk.Advance(3 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for inStore(store, w) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not expire the lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestDeregister(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r := newRegistry(t, store, clk, "")
	w := vm("billing-1")
	lease := register(t, r, w, 0).GetLeaseId()
	if _, err := r.Deregister(context.Background(), &meshv1.DeregisterRequest{LeaseId: lease}); err != nil {
		t.Fatal(err)
	}
	if inStore(store, w) {
		t.Error("deregistered workload still in the store")
	}
	_, err := r.Deregister(context.Background(), &meshv1.DeregisterRequest{LeaseId: lease})
	wantCode(t, err, codes.NotFound)
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "registrations.json")
	clk := newClock()
	store := model.NewStore()
	r := newRegistry(t, store, clk, path)
	a, b, c := vm("billing-1"), vm("billing-2"), vm("billing-3")
	leaseA := register(t, r, a, 20).GetLeaseId()
	register(t, r, b, 0)
	leaseC := register(t, r, c, 0).GetLeaseId()
	if _, err := r.Deregister(context.Background(), &meshv1.DeregisterRequest{LeaseId: leaseC}); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state file mode %v, want 0600: it holds lease IDs", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("temporary files left beside the state: %v", entries)
	}

	// A restart much later than the last renewal: the leases come back
	// with a full TTL from now, and keep their IDs.
	clk.Advance(25 * time.Second)
	store2 := model.NewStore()
	r2 := newRegistry(t, store2, clk, path)
	if !inStore(store2, a) || !inStore(store2, b) || inStore(store2, c) {
		t.Fatalf("restored %v", store2.Snapshot().Workloads())
	}
	if owner, _ := store2.WorkloadOwner(a.Ref); owner != Source {
		t.Errorf("restored owner %q", owner)
	}
	clk.Advance(25 * time.Second)
	r2.expire()
	if !inStore(store2, a) {
		t.Fatal("restored lease did not get a fresh full TTL")
	}
	if _, err := r2.Renew(context.Background(), &meshv1.RenewRequest{LeaseId: leaseA}); err != nil {
		t.Fatalf("renew with the lease ID from before the restart: %v", err)
	}
	clk.Advance(10 * time.Second)
	r2.expire()
	if inStore(store2, b) || !inStore(store2, a) {
		t.Error("expiry after restore")
	}

	// The expiry was saved too.
	store3 := model.NewStore()
	newRegistry(t, store3, clk, path)
	if inStore(store3, b) || !inStore(store3, a) {
		t.Errorf("after a second restart: %v", store3.Snapshot().Workloads())
	}
}

func TestRestoreSkipsWorkloadsDeclaredElsewhere(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registrations.json")
	clk := newClock()
	r := newRegistry(t, model.NewStore(), clk, path)
	register(t, r, vm("billing-1"), 0)
	register(t, r, vm("billing-2"), 0)

	store := model.NewStore()
	declared := vm("billing-1")
	if err := store.Apply("manifests", model.Changes{PutWorkloads: []*model.Workload{declared}}); err != nil {
		t.Fatal(err)
	}
	newRegistry(t, store, clk, path)
	if owner, _ := store.WorkloadOwner(declared.Ref); owner != "manifests" {
		t.Errorf("owner %q", owner)
	}
	if !inStore(store, vm("billing-2")) {
		t.Error("the other registration was not restored")
	}
}

func TestRestoreRejectsCorruptState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registrations.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(model.NewStore(), Options{StatePath: path})
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want an error naming %s", err, path)
	}
}

func TestOptionsChecked(t *testing.T) {
	if _, err := New(model.NewStore(), Options{DefaultTTL: time.Hour, MaxTTL: time.Minute}); err == nil {
		t.Error("DefaultTTL > MaxTTL accepted")
	}
}

func TestConcurrentRegistrationsAllSaved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registrations.json")
	clk := newClock()
	r := newRegistry(t, model.NewStore(), clk, path)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			w := vm("billing-" + string(rune('a'+i%26)) + string(rune('a'+i/26)))
			if _, err := r.Register(context.Background(), &meshv1.RegisterRequest{Workload: wire.WorkloadToProto(w)}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	store := model.NewStore()
	newRegistry(t, store, clk, path)
	if n := len(store.Snapshot().Workloads()); n != 40 {
		t.Errorf("%d registrations restored, want 40", n)
	}
}

func TestMaxLeases(t *testing.T) {
	store, clk := model.NewStore(), newClock()
	r, err := New(store, Options{Logger: testLogger(t), MaxLeases: 2, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	register(t, r, vm("billing-1"), 0)
	register(t, r, vm("billing-2"), 0)
	_, err = r.Register(context.Background(), &meshv1.RegisterRequest{Workload: wire.WorkloadToProto(vm("billing-3"))})
	wantCode(t, err, codes.ResourceExhausted)
	if inStore(store, vm("billing-3")) {
		t.Error("a registration over the limit reached the store")
	}
	// A workload already registered may register again at the limit.
	register(t, r, vm("billing-2"), 0)
}
