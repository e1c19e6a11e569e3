package control

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/discovery"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
)

// These tests run the real control-plane servers (discovery, registry) on
// loopback against the real client. The control package itself must not
// import them; its tests may.

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func ref(s string) model.Ref {
	ns, name, _ := strings.Cut(s, "/")
	return model.Ref{Namespace: ns, Name: name}
}

func service(r, app string) *model.Service {
	return &model.Service{Ref: ref(r), Selector: map[string]string{"app": app}, Ports: []model.ServicePort{{Port: 80, TargetPort: 8080, Protocol: model.ProtocolHTTP1}}}
}

func workload(r, app, addr string) *model.Workload {
	return &model.Workload{Ref: ref(r), Labels: map[string]string{"app": app}, Address: addr, InboundPort: 4143, Ports: []model.WorkloadPort{{Port: 8080}}}
}

// controlPlane is one run of the control plane's API servers.
type controlPlane struct {
	store     *model.Store
	discovery *discovery.Server
	registry  *registry.Registry
	grpc      *grpc.Server
	addr      string
	cancel    context.CancelFunc
	done      chan struct{}
}

// startControlPlane serves on addr ("" for any loopback port).
func startControlPlane(t *testing.T, addr string, store *model.Store, ropts registry.Options) *controlPlane {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var lis net.Listener
	var err error
	// The port of a control plane just stopped may take a moment to free.
	for range 50 {
		if lis, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	ropts.Logger = testLogger(t)
	reg, err := registry.New(store, ropts)
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{
		store:     store,
		discovery: discovery.NewServer(store, testLogger(t)),
		registry:  reg,
		grpc:      grpc.NewServer(discovery.ServerOptions()...),
		addr:      lis.Addr().String(),
		done:      make(chan struct{}),
	}
	meshv1.RegisterDiscoveryServer(cp.grpc, cp.discovery)
	meshv1.RegisterRegistrationServer(cp.grpc, cp.registry)
	ctx, cancel := context.WithCancel(context.Background())
	cp.cancel = cancel
	go func() {
		defer close(cp.done)
		reg.Run(ctx) //nolint:errcheck // returns nil on cancel
	}()
	go cp.grpc.Serve(lis) //nolint:errcheck // ends with Stop
	t.Cleanup(cp.stop)
	return cp
}

// stop kills the control plane: streams break as they would in a crash.
func (cp *controlPlane) stop() {
	cp.cancel()
	cp.grpc.Stop()
	<-cp.done
}

func (cp *controlPlane) apply(t *testing.T, c model.Changes) {
	t.Helper()
	if err := cp.store.Apply("test", c); err != nil {
		t.Fatal(err)
	}
}

// configs collects what a Client hands the proxy.
type configs struct {
	mu  sync.Mutex
	all []*model.ProxyConfig
	ch  chan struct{}
}

func newConfigs() *configs { return &configs{ch: make(chan struct{}, 1)} }

func (c *configs) on(cfg *model.ProxyConfig) {
	c.mu.Lock()
	c.all = append(c.all, cfg)
	c.mu.Unlock()
	select {
	case c.ch <- struct{}{}:
	default:
	}
}

func (c *configs) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.all)
}

func (c *configs) last() *model.ProxyConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.all) == 0 {
		return nil
	}
	return c.all[len(c.all)-1]
}

// wait returns the first config, from now on, that satisfies cond.
func (c *configs) wait(t *testing.T, desc string, cond func(*model.ProxyConfig) bool) *model.ProxyConfig {
	t.Helper()
	deadline := time.After(15 * time.Second)
	for {
		if cfg := c.last(); cfg != nil && cond(cfg) {
			return cfg
		}
		select {
		case <-c.ch:
		case <-deadline:
			t.Fatalf("no config with %s; last: %s", desc, describe(c.last()))
		}
	}
}

func describe(cfg *model.ProxyConfig) string {
	if cfg == nil {
		return "none"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "v%d", cfg.Version)
	if cfg.Workload != nil {
		fmt.Fprintf(&b, " workload %s@%s", cfg.Workload.Ref, cfg.Workload.Address)
	}
	for r, st := range cfg.Services {
		fmt.Fprintf(&b, " %s[", r)
		for _, e := range st.Endpoints {
			fmt.Fprintf(&b, " %s@%s", e.ID, e.Address)
		}
		b.WriteString(" ]")
	}
	return b.String()
}

// endpoints lists a service's endpoints as "id@address".
func endpoints(cfg *model.ProxyConfig, svc string) string {
	st, ok := cfg.Services[ref(svc)]
	if !ok {
		return "<absent>"
	}
	var out []string
	for _, e := range st.Endpoints {
		out = append(out, e.ID+"@"+e.Address)
	}
	return strings.Join(out, ",")
}

func hasEndpoints(svc, want string) func(*model.ProxyConfig) bool {
	return func(cfg *model.ProxyConfig) bool { return endpoints(cfg, svc) == want }
}

func runClient(t *testing.T, addr string, me model.Ref, subs ...string) (*Client, *configs) {
	t.Helper()
	var refs []model.Ref
	for _, s := range subs {
		refs = append(refs, ref(s))
	}
	return runClientWith(t, addr, me, func(c *Client) { c.SetSubscriptions(refs) })
}

// runClientWith is runClient with the client set up by setup before it
// runs.
func runClientWith(t *testing.T, addr string, me model.Ref, setup func(*Client)) (*Client, *configs) {
	t.Helper()
	conn, err := Dial(addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(conn, me, testLogger(t))
	setup(c)
	got := newConfigs()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx, got.on) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		conn.Close()
	})
	return c, got
}

func TestClientFullStateThenDeltas(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1"), workload("shop/cart-1", "cart", "198.18.0.2")},
	})
	_, got := runClient(t, cp.addr, ref("shop/web-1"), "shop/cart", "shop/prices")

	cfg := got.wait(t, "the full state", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2"))
	if cfg.Workload == nil || cfg.Workload.Address != "198.18.0.1" {
		t.Errorf("own workload %+v", cfg.Workload)
	}
	if _, ok := cfg.Services[ref("shop/prices")]; ok {
		t.Error("a service that does not exist is in the config")
	}
	if st := cfg.Services[ref("shop/cart")]; st.Service.Ports[0].Protocol != model.ProtocolHTTP1 {
		t.Errorf("service %+v", st.Service)
	}

	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-2", "cart", "198.18.0.3")}})
	got.wait(t, "an endpoint added", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2,shop/cart-2@198.18.0.3"))
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.4")}})
	got.wait(t, "an endpoint changed", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.4,shop/cart-2@198.18.0.3"))
	cp.apply(t, model.Changes{DeleteWorkloads: []model.Ref{ref("shop/cart-1")}})
	got.wait(t, "an endpoint removed", hasEndpoints("shop/cart", "shop/cart-2@198.18.0.3"))
	cp.apply(t, model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}})
	got.wait(t, "a service created", hasEndpoints("shop/prices", ""))
	cp.apply(t, model.Changes{DeleteServices: []model.Ref{ref("shop/cart")}})
	got.wait(t, "a service deleted", hasEndpoints("shop/cart", "<absent>"))

	// Every config handed out stays as it was.
	first := got.all[0]
	if endpoints(first, "shop/cart") != "shop/cart-1@198.18.0.2" {
		t.Errorf("an earlier config was modified: %s", describe(first))
	}
}

func TestClientSubscriptionsMidStream(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart"), service("shop/prices", "prices")},
		PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.2"), workload("shop/prices-1", "prices", "198.18.0.3")},
	})
	c, got := runClient(t, cp.addr, ref("shop/web-1"), "shop/cart")
	got.wait(t, "cart", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2"))

	c.SetSubscriptions([]model.Ref{ref("shop/cart"), ref("shop/prices")})
	got.wait(t, "prices subscribed", hasEndpoints("shop/prices", "shop/prices-1@198.18.0.3"))

	c.SetSubscriptions([]model.Ref{ref("shop/prices"), {Namespace: "Bad", Name: "!"}})
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/prices-2", "prices", "198.18.0.4")}})
	cfg := got.wait(t, "cart dropped", hasEndpoints("shop/prices", "shop/prices-1@198.18.0.3,shop/prices-2@198.18.0.4"))
	if _, ok := cfg.Services[ref("shop/cart")]; ok {
		t.Error("unsubscribed service still in the config")
	}

	// Quickly off and on again: the client must end up with a state, not
	// wait forever for one.
	c.SetSubscriptions([]model.Ref{ref("shop/prices")})
	c.SetSubscriptions([]model.Ref{ref("shop/prices"), ref("shop/cart")})
	c.SetSubscriptions([]model.Ref{ref("shop/prices")})
	c.SetSubscriptions([]model.Ref{ref("shop/prices"), ref("shop/cart")})
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-3", "cart", "198.18.0.5")}})
	got.wait(t, "cart again", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2,shop/cart-3@198.18.0.5"))
	if n := len(cp.discovery.Connected()); n != 1 {
		t.Errorf("%d streams, want 1", n)
	}
}

func TestClientWorkloadAppearsLater(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	_, got := runClient(t, cp.addr, ref("vms/billing-1"))
	got.wait(t, "a first config", func(cfg *model.ProxyConfig) bool { return cfg.Workload == nil })
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("vms/billing-1", "billing", "198.18.0.8")}})
	got.wait(t, "the workload", func(cfg *model.ProxyConfig) bool { return cfg.Workload != nil && cfg.Workload.Address == "198.18.0.8" })
}

func TestClientKeepsConfigWhileControlPlaneIsDown(t *testing.T) {
	store := model.NewStore()
	cp := startControlPlane(t, "", store, registry.Options{})
	cp.apply(t, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart"), service("shop/prices", "prices")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1"), workload("shop/cart-1", "cart", "198.18.0.2"), workload("shop/prices-1", "prices", "198.18.0.3")},
	})
	_, got := runClient(t, cp.addr, ref("shop/web-1"), "shop/cart", "shop/prices")
	before := got.wait(t, "the full state", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2"))

	cp.stop()
	n := got.count()
	time.Sleep(time.Second)
	if got.count() != n {
		t.Errorf("onConfig called while the control plane was down: %s", describe(got.last()))
	}

	// A restarted control plane with a model that changed meanwhile; the
	// proxy's workload is not there yet (its source is slower).
	store2 := model.NewStore()
	cp2 := startControlPlane(t, cp.addr, store2, registry.Options{})
	cp2.apply(t, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.2"), workload("shop/cart-9", "cart", "198.18.0.9")},
	})
	after := got.wait(t, "the new state", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2,shop/cart-9@198.18.0.9"))
	if after.Workload != before.Workload {
		t.Error("the workload the restarted control plane does not know yet was dropped")
	}
	if _, ok := after.Services[ref("shop/prices")]; ok {
		t.Error("a service the new model does not have is still in the config")
	}
	if subs := cp2.discovery.Connected(); len(subs) != 1 || len(subs[0].Subscriptions) != 2 {
		t.Errorf("after reconnect: %+v", subs)
	}
	// And deltas flow on the new stream.
	cp2.apply(t, model.Changes{DeleteWorkloads: []model.Ref{ref("shop/cart-1")}})
	got.wait(t, "a delta after reconnecting", hasEndpoints("shop/cart", "shop/cart-9@198.18.0.9"))
}

func TestClientRunStopsOnInvalidArgument(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	conn, err := Dial(cp.addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := NewClient(conn, model.Ref{Namespace: "x"}, testLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = c.Run(ctx, func(*model.ProxyConfig) {})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Run: %v, want InvalidArgument", err)
	}
}

func TestLeaseKeepAndDeregister(t *testing.T) {
	store := model.NewStore()
	cp := startControlPlane(t, "", store, registry.Options{DefaultTTL: 2 * time.Second, MaxTTL: 2 * time.Second})
	conn, err := Dial(cp.addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := workload("vms/billing-1", "billing", "198.18.1.10")
	lease, err := Register(context.Background(), conn, w, time.Minute, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if lease.ttl != 2*time.Second {
		t.Errorf("ttl %v, want the server's cap of 2s", lease.ttl)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- lease.Keep(ctx) }()

	// Several TTLs pass; renewals keep the workload in.
	time.Sleep(5 * time.Second)
	if _, ok := store.Snapshot().Workload(w.Ref); !ok {
		t.Fatal("workload lapsed although renewed")
	}
	if err := lease.Deregister(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, ok := store.Snapshot().Workload(w.Ref); ok {
		t.Error("deregistered workload still in the store")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Keep: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Keep went on after Deregister")
	}
	cancel()
}

func TestLeaseExpiresWithoutKeep(t *testing.T) {
	store := model.NewStore()
	cp := startControlPlane(t, "", store, registry.Options{DefaultTTL: time.Second, MaxTTL: time.Second})
	conn, err := Dial(cp.addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := workload("vms/billing-1", "billing", "198.18.1.10")
	if _, err := Register(context.Background(), conn, w, 0, testLogger(t)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, ok := store.Snapshot().Workload(w.Ref); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an unrenewed lease did not lapse")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLeaseReregistersAfterControlPlaneRestart(t *testing.T) {
	ropts := registry.Options{DefaultTTL: 3 * time.Second, MaxTTL: 3 * time.Second}
	cp := startControlPlane(t, "", model.NewStore(), ropts)
	conn, err := Dial(cp.addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := workload("vms/billing-1", "billing", "198.18.1.10")
	lease, err := Register(context.Background(), conn, w, 0, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lease.Keep(ctx) //nolint:errcheck // ends with ctx

	// Restarted without its state: it has never heard of the lease.
	cp.stop()
	store2 := model.NewStore()
	startControlPlane(t, cp.addr, store2, ropts)
	deadline := time.Now().Add(15 * time.Second)
	for {
		if got, ok := store2.Snapshot().Workload(w.Ref); ok && got.Equal(w) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the proxy did not register again after NotFound")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRegisterRefusals(t *testing.T) {
	store := model.NewStore()
	cp := startControlPlane(t, "", store, registry.Options{})
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("vms/declared", "x", "198.18.1.1")}})
	conn, err := Dial(cp.addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = Register(ctx, conn, workload("vms/declared", "x", "198.18.1.2"), 0, testLogger(t))
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("a workload another source declares: %v, want AlreadyExists", err)
	}
	bad := workload("vms/bad", "x", "not-an-ip")
	if _, err := Register(ctx, conn, bad, 0, testLogger(t)); err == nil || !strings.Contains(err.Error(), "spec.address") {
		t.Errorf("an invalid workload: %v, want an error naming spec.address", err)
	}
}

// TestClientEverything: a client that asks for every service gets each
// one in its config, those made later too, without naming any.
func TestClientEverything(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1"), workload("shop/cart-1", "cart", "198.18.0.2")},
	})
	_, got := runClientWith(t, cp.addr, ref("shop/web-1"), func(c *Client) { c.Everything = true })
	got.wait(t, "the mesh's service", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2"))
	cp.apply(t, model.Changes{PutServices: []*model.Service{service("bank/ledger", "ledger")},
		PutWorkloads: []*model.Workload{workload("bank/ledger-1", "ledger", "198.18.0.3")}})
	got.wait(t, "a service made later", hasEndpoints("bank/ledger", "bank/ledger-1@198.18.0.3"))
	cp.apply(t, model.Changes{DeleteServices: []model.Ref{ref("shop/cart")}})
	got.wait(t, "a service deleted", hasEndpoints("shop/cart", "<absent>"))
}
