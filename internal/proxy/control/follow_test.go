package control

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials/insecure"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
)

// fakeProxy records what Follow applies; refuse decides which configs it
// turns down, as a proxy does when a port is taken.
type fakeProxy struct {
	mu     sync.Mutex
	refuse func(*model.ProxyConfig) bool
	got    configs
}

func (f *fakeProxy) Apply(pc *model.ProxyConfig) error {
	f.mu.Lock()
	refuse := f.refuse
	f.mu.Unlock()
	if refuse != nil && refuse(pc) {
		return errors.New("refused")
	}
	f.got.on(pc)
	return nil
}

func (f *fakeProxy) setRefuse(refuse func(*model.ProxyConfig) bool) {
	f.mu.Lock()
	f.refuse = refuse
	f.mu.Unlock()
}

func calling(w *model.Workload, local uint32, services ...string) *model.Workload {
	for i, s := range services {
		w.Outbound = append(w.Outbound, model.Outbound{Service: ref(s), Port: 80, LocalPort: local + uint32(i)})
	}
	return w
}

func follow(t *testing.T, addr string, me model.Ref, f *fakeProxy) {
	t.Helper()
	f.got.ch = make(chan struct{}, 1)
	conn, err := Dial(addr, insecure.NewCredentials())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- Follow(ctx, NewClient(conn, me, testLogger(t)), f, testLogger(t)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
		conn.Close()
	})
}

func TestFollowAppliesOnlyOnceEveryCalledServiceAnswered(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{
		PutServices: []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{
			calling(workload("shop/web-1", "web", "198.18.0.1"), 15001, "shop/cart", "shop/prices"),
			workload("shop/cart-1", "cart", "198.18.0.2"),
		},
	})
	var f fakeProxy
	follow(t, cp.addr, ref("shop/web-1"), &f)

	got := f.got.wait(t, "a config", func(*model.ProxyConfig) bool { return true })
	if f.got.count() != 1 || endpoints(got, "shop/cart") != "shop/cart-1@198.18.0.2" {
		t.Fatalf("first config applied %s (%d applied); want cart's full state in it", describe(got), f.got.count())
	}
	cp.apply(t, model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}, PutWorkloads: []*model.Workload{workload("shop/prices-1", "prices", "198.18.0.3")}})
	f.got.wait(t, "a service created later", hasEndpoints("shop/prices", "shop/prices-1@198.18.0.3"))
}

func TestFollowRetriesARefusedConfig(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1")}})
	var mu sync.Mutex
	refusals := 0
	f := &fakeProxy{refuse: func(*model.ProxyConfig) bool {
		mu.Lock()
		defer mu.Unlock()
		refusals++
		return refusals <= 2
	}}
	follow(t, cp.addr, ref("shop/web-1"), f)
	f.got.wait(t, "the config, applied on a retry", func(pc *model.ProxyConfig) bool { return pc.Workload != nil })
}

func TestFollowKeepsUpdatingTheWorkloadInForceWhileANewOneIsRefused(t *testing.T) {
	cp := startControlPlane(t, "", model.NewStore(), registry.Options{})
	cp.apply(t, model.Changes{
		PutServices: []*model.Service{service("shop/cart", "cart"), service("shop/stock", "stock")},
		PutWorkloads: []*model.Workload{
			calling(workload("shop/web-1", "web", "198.18.0.1"), 15001, "shop/cart"),
			workload("shop/cart-1", "cart", "198.18.0.2"),
		},
	})
	// The new workload's port for stock is taken, say.
	f := &fakeProxy{refuse: func(pc *model.ProxyConfig) bool { return len(pc.Workload.Outbound) > 1 }}
	follow(t, cp.addr, ref("shop/web-1"), f)
	f.got.wait(t, "the first workload", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2"))

	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{calling(workload("shop/web-1", "web", "198.18.0.1"), 15001, "shop/cart", "shop/stock")}})
	cp.apply(t, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-2", "cart", "198.18.0.3")}})
	got := f.got.wait(t, "cart's new endpoint under the workload in force", hasEndpoints("shop/cart", "shop/cart-1@198.18.0.2,shop/cart-2@198.18.0.3"))
	if len(got.Workload.Outbound) != 1 {
		t.Fatalf("applied workload calls %v; want the one in force", got.Workload.Outbound)
	}

	// Once the new workload fits, it is taken.
	f.setRefuse(nil)
	f.got.wait(t, "the new workload", func(pc *model.ProxyConfig) bool { return len(pc.Workload.Outbound) == 2 })
}

func TestTakeBundle(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "root"}, NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	var gotRoots int
	var gotVersion uint64
	c := &Client{OnBundle: func(roots []*x509.Certificate, v uint64) { gotRoots, gotVersion = len(roots), v }}

	if err := c.takeBundle(&meshv1.StreamResponse{TrustBundle: [][]byte{der, []byte("junk")}, BundleVersion: 3}); err == nil || gotRoots != 0 {
		t.Fatalf("a bundle with a bad root: err %v, %d roots taken; want it refused whole", err, gotRoots)
	}
	if err := c.takeBundle(&meshv1.StreamResponse{TrustBundle: [][]byte{der, der}, BundleVersion: 4}); err != nil || gotRoots != 2 || gotVersion != 4 {
		t.Fatalf("good bundle: err %v, %d roots, version %d", err, gotRoots, gotVersion)
	}
	if err := c.takeBundle(&meshv1.StreamResponse{Version: 9}); err != nil || gotVersion != 4 {
		t.Fatalf("a response without a bundle: err %v, version %d", err, gotVersion)
	}
}
