package controlplane

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/install/crds"
	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/source/kube"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
)

// testElection is leader election at a pace for tests: a replica that
// dies unannounced is replaced within 6s, and one cut off from the API
// server stops leading after 3s, with a margin for the race detector.
func testElection(identity string) *LeaderElection {
	return &LeaderElection{Lease: install.Name, Identity: identity,
		LeaseDuration: 6 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond}
}

// installRBAC applies what `weft install` renders for the control plane
// to run as its ServiceAccount in ns (the ServiceAccount, its roles and
// bindings, the empty CA Secret and Lease), and returns a config that
// authenticates as that ServiceAccount with a TokenRequest token: the
// control plane gets nothing weft install does not grant.
func installRBAC(t *testing.T, env *kubeenv.Env, ns string) *rest.Config {
	t.Helper()
	objs, err := install.Render(install.Options{Namespace: ns, Image: "registry.example/weft:test", ProxyImage: "registry.example/weft-proxy:test", CRDs: []crds.Set{}})
	if err != nil {
		t.Fatal(err)
	}
	resources := map[string]string{
		"ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
		"Role": "roles", "RoleBinding": "rolebindings", "Secret": "secrets", "Lease": "leases",
	}
	dyn := env.Dynamic(t)
	for _, o := range objs {
		res, ok := resources[o.Kind]
		if !ok || (o.Kind == "Secret" && o.Name != install.CASecret) {
			continue
		}
		gv, err := schema.ParseGroupVersion(o.APIVersion)
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(o.YAML, &u.Object); err != nil {
			t.Fatal(err)
		}
		var r dynamic.ResourceInterface = dyn.Resource(gv.WithResource(res))
		if o.Namespace != "" {
			r = dyn.Resource(gv.WithResource(res)).Namespace(o.Namespace)
		}
		if _, err := r.Apply(t.Context(), o.Name, u, metav1.ApplyOptions{FieldManager: "weft-test", Force: true}); err != nil {
			t.Fatalf("applying %s: %v", o, err)
		}
	}
	tr, err := env.Client(t).CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), install.Name,
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return env.TokenConfig(tr.Status.Token)
}

// testLogger logs to the test's output.
func testLogger(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(t.Output(), nil)) }

// replica is a control plane started by startReplica.
type replica struct {
	*ControlPlane
	stop func() // ends Run and waits for it
}

// startReplica runs a control plane until stop or the end of the test.
func startReplica(t *testing.T, cp *ControlPlane) replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("control plane: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-cp.Loaded():
	case err := <-done:
		done <- err
		t.Fatalf("control plane ended before it loaded: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the control plane did not load its sources within 30s")
	}
	return replica{cp, stop}
}

// within polls cond every 100ms until it holds, for at most d.
func within(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bundleIn checks namespace ns's CA bundle ConfigMap holds want.
func bundleIn(ctx context.Context, c kubernetes.Interface, ns string, want []byte) error {
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, inject.CABundleConfigMap, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if got := cm.Data[inject.CABundleKey]; got != string(want) {
		return fmt.Errorf("ConfigMap %s/%s holds %d bytes, not the bundle's %d", ns, inject.CABundleConfigMap, len(got), len(want))
	}
	return nil
}

// TestReplicas: two control planes started together on the empty Secret
// and Lease weft install renders, with only the RBAC it grants, end with
// one CA; one leads, and keeps the CA bundle in every mesh namespace;
// when it stops, the other takes over within the lease's duration and
// keeps the ConfigMaps current.
func TestReplicas(t *testing.T) {
	env := kubeenv.Shared(t)
	admin := env.Client(t)
	const ns = "weft-replicas"
	env.CreateNamespace(t, ns, nil)
	env.CreateNamespace(t, "replicas-shop", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	env.CreateNamespace(t, "replicas-unmeshed", nil)
	cfg := installRBAC(t, env, ns)

	options := func(name string) Options {
		return Options{Kube: cfg, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: testLogger(t).With("replica", name),
			Namespace: ns, CASecret: install.CASecret, LeaderElection: testElection(name)}
	}
	// Both read the empty Secret before either writes it, so one write
	// loses with a Conflict.
	cps := make([]*ControlPlane, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, name := range []string{"a", "b"} {
		wg.Go(func() { cps[i], errs[i] = NewContext(t.Context(), options(name)) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !cps[0].ca.ActiveRoot().Equal(cps[1].ca.ActiveRoot()) {
		t.Fatal("the replicas made different roots")
	}
	secret, err := admin.CoreV1().Secrets(ns).Get(t.Context(), install.CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if blk, _ := pem.Decode(secret.Data["root-1.crt"]); blk == nil || !bytes.Equal(blk.Bytes, cps[0].ca.ActiveRoot().Raw) {
		t.Fatal("the Secret does not hold the replicas' root")
	}
	if tok := cps[0].adminToken; tok == "" || tok != cps[1].adminToken || tok != string(secret.Data[adminTokenFile]) {
		t.Error("the replicas do not share the admin token of the Secret")
	}
	if b, err := os.ReadFile(filepath.Join(cps[1].opts.StateDir, adminTokenFile)); err != nil || strings.TrimSpace(string(b)) != cps[0].adminToken {
		t.Errorf("the admin token is not where the CLI looks for it on the replica's host: %q, %v", b, err)
	}
	replicas := []replica{startReplica(t, cps[0]), startReplica(t, cps[1])}

	var leader, follower replica
	within(t, 10*time.Second, "one replica leads", func() error {
		a, b := replicas[0].Status().Kubernetes.Leadership, replicas[1].Status().Kubernetes.Leadership
		switch {
		case a.Leading && b.Leading:
			t.Fatal("both replicas lead")
		case a.Leading:
			leader, follower = replicas[0], replicas[1]
		case b.Leading:
			leader, follower = replicas[1], replicas[0]
		default:
			return errors.New("no replica leads")
		}
		return nil
	})
	l := leader.Status().Kubernetes.Leadership
	if want := ns + "/" + install.Name; l.Lease != want || l.Leader != l.Identity {
		t.Errorf("the leader's status %+v: want lease %s, itself the leader", l, want)
	}
	bundle := leader.ca.BundlePEM()
	within(t, 10*time.Second, "the bundle in the mesh namespace", func() error { return bundleIn(t.Context(), admin, "replicas-shop", bundle) })
	if _, err := admin.CoreV1().ConfigMaps("replicas-unmeshed").Get(t.Context(), inject.CABundleConfigMap, metav1.GetOptions{}); err == nil {
		t.Error("a namespace outside the mesh got the bundle")
	}
	// A Pod `weft inject` meshed, in a namespace with no label: the kubelet
	// mounts its volumes before it gets an IP, so it waits, unstarted, for
	// the bundle.
	env.CreateNamespace(t, "replicas-injected", nil)
	always := corev1.ContainerRestartPolicyAlways
	injected := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "api-0", Namespace: "replicas-injected"}, Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: manifest.ProxyContainer, Image: "weft-proxy", RestartPolicy: &always}},
		Containers:     []corev1.Container{{Name: "app", Image: "app"}},
	}}
	if _, err := admin.CoreV1().Pods("replicas-injected").Create(t.Context(), injected, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 10*time.Second, "the bundle beside a meshed Pod with no IP yet", func() error { return bundleIn(t.Context(), admin, "replicas-injected", bundle) })
	for range 5 {
		if follower.Status().Kubernetes.Leadership.Leading {
			t.Fatal("both replicas lead")
		}
		time.Sleep(100 * time.Millisecond)
	}
	within(t, 5*time.Second, "the follower sees who leads", func() error {
		if f := follower.Status().Kubernetes.Leadership; f.Leader != l.Identity {
			return fmt.Errorf("it sees %q lead, not %q", f.Leader, l.Identity)
		}
		return nil
	})

	leader.stop()
	stopped := time.Now()
	lease := testElection("").LeaseDuration
	within(t, lease, "the follower takes over", func() error {
		if !follower.Status().Kubernetes.Leadership.Leading {
			return errors.New("it does not lead")
		}
		return nil
	})
	t.Logf("the follower took over %s after the leader stopped", time.Since(stopped).Round(10*time.Millisecond))

	// The new leader keeps the bundle current: in a namespace that joins
	// the mesh, and where someone changed it.
	env.CreateNamespace(t, "replicas-new", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	cm, err := admin.CoreV1().ConfigMaps("replicas-shop").Get(t.Context(), inject.CABundleConfigMap, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[inject.CABundleKey] = "tampered"
	if _, err := admin.CoreV1().ConfigMaps("replicas-shop").Update(t.Context(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, mesh := range []string{"replicas-new", "replicas-shop"} {
		within(t, 10*time.Second, "the bundle in "+mesh, func() error { return bundleIn(t.Context(), admin, mesh, bundle) })
	}
}

// TestCASecretConflict: a replica whose write of a new CA loses to
// another's (a Conflict: the Secret changed since it read it) loads the
// other's CA.
func TestCASecretConflict(t *testing.T) {
	env := kubeenv.Shared(t)
	const ns = "weft-ca-conflict"
	env.CreateNamespace(t, ns, nil)
	cfg := installRBAC(t, env, ns)
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The other replica stores its CA just as this one is about to.
	var other []byte
	var otherToken string
	slow := rest.CopyConfig(cfg)
	slow.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodPut && other == nil {
				c, token, err := loadCASecret(r.Context(), client, ns, install.CASecret, t.TempDir(), spiffeid.RequireTrustDomainFromString(DefaultTrustDomain), testLogger(t))
				if err != nil {
					return nil, err
				}
				other, otherToken = c.ActiveRoot().Raw, token
			}
			return rt.RoundTrip(r)
		})
	})
	slowClient, err := kubernetes.NewForConfig(slow)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c, token, err := loadCASecret(t.Context(), slowClient, ns, install.CASecret, t.TempDir(), spiffeid.RequireTrustDomainFromString(DefaultTrustDomain), slog.New(slog.NewTextHandler(io.MultiWriter(&logs, t.Output()), nil)))
	if err != nil {
		t.Fatal(err)
	}
	if other == nil || !bytes.Equal(c.ActiveRoot().Raw, other) {
		t.Fatal("the replica that lost the race does not use the winner's root")
	}
	if token == "" || token != otherToken {
		t.Error("the replica that lost the race does not use the winner's admin token")
	}
	if !strings.Contains(logs.String(), "another replica stored a CA first") {
		t.Errorf("no Conflict was met:\n%s", logs.String())
	}
}

// TestCASecretRefused: a Secret that is missing, or whose data does not
// make a CA, stops the control plane with an error naming it and the key;
// and Kubernetes mode's settings need Kubernetes mode and a namespace.
func TestCASecretRefused(t *testing.T) {
	env := kubeenv.Shared(t)
	admin := env.Client(t)
	const ns = "weft-ca-refused"
	env.CreateNamespace(t, ns, nil)
	caOnly, err := ca.LoadOrCreateFrom(nil, "test", t.TempDir(), spiffeid.RequireTrustDomainFromString(DefaultTrustDomain), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Name: "no-admin-token"}, Data: caOnly.Files()},
		{ObjectMeta: metav1.ObjectMeta{Name: "bad-state"}, Data: map[string][]byte{"state.json": []byte("{"), "token.key": make([]byte, 32)}},
		{ObjectMeta: metav1.ObjectMeta{Name: "no-token-key"}, Data: map[string][]byte{"state.json": []byte("{}")}},
	} {
		if _, err := admin.CoreV1().Secrets(ns).Create(t.Context(), s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	base := Options{StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: testLogger(t)}
	for _, tc := range []struct {
		desc string
		opts func(*Options)
		want []string
	}{
		{"malformed state", func(o *Options) { o.Kube, o.Namespace, o.CASecret = env.AdminConfig(), ns, "bad-state" },
			[]string{`Secret weft-ca-refused/bad-state key "state.json"`}},
		{"no join token key", func(o *Options) { o.Kube, o.Namespace, o.CASecret = env.AdminConfig(), ns, "no-token-key" },
			[]string{`Secret weft-ca-refused/no-token-key key "token.key"`}},
		{"no admin token", func(o *Options) { o.Kube, o.Namespace, o.CASecret = env.AdminConfig(), ns, "no-admin-token" },
			[]string{`Secret weft-ca-refused/no-admin-token key "admin.token"`}},
		{"no Secret", func(o *Options) { o.Kube, o.Namespace, o.CASecret = env.AdminConfig(), ns, "none" },
			[]string{"Secret weft-ca-refused/none", "not found"}},
		{"a Secret outside Kubernetes mode", func(o *Options) { o.Namespace, o.CASecret = ns, "weft-ca" },
			[]string{"CA Secret needs Kubernetes mode"}},
		{"leader election outside Kubernetes mode", func(o *Options) { o.LeaderElection = testElection("a") },
			[]string{"leader election needs Kubernetes mode"}},
		{"no namespace", func(o *Options) { o.Kube, o.CASecret = env.AdminConfig(), "weft-ca" },
			[]string{"needs the control plane's namespace"}},
		{"a Secret and a directory", func(o *Options) {
			o.Kube, o.Namespace, o.CASecret, o.CADir = env.AdminConfig(), ns, "weft-ca", t.TempDir()
		},
			[]string{"not both"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			o := base
			tc.opts(&o)
			_, err := NewContext(t.Context(), o)
			if err == nil {
				t.Fatal("the control plane started")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestBundleFollowsRotation: a single control plane, with no election,
// leads, and a rotation step's new bundle reaches the ConfigMaps.
func TestBundleFollowsRotation(t *testing.T) {
	env := kubeenv.Shared(t)
	admin := env.Client(t)
	env.CreateNamespace(t, "rotation-shop", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	cp := runControlPlane(t, Options{Kube: env.AdminConfig(), StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Logger: testLogger(t)})
	within(t, 5*time.Second, "it leads", func() error {
		if l := cp.Status().Kubernetes.Leadership; !l.Leading || l.Lease != "" {
			return fmt.Errorf("status %+v, want leading, no lease", l)
		}
		return nil
	})
	within(t, 10*time.Second, "the bundle", func() error { return bundleIn(t.Context(), admin, "rotation-shop", cp.ca.BundlePEM()) })
	if err := cp.ca.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	two := cp.ca.BundlePEM()
	if n := bytes.Count(two, []byte("BEGIN CERTIFICATE")); n != 2 {
		t.Fatalf("the bundle after PrepareRotation holds %d roots", n)
	}
	within(t, 5*time.Second, "the two-root bundle", func() error { return bundleIn(t.Context(), admin, "rotation-shop", two) })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestLeaderCutOff: a leader that can no longer reach the API server
// stops leading before its Lease runs out, and only then does the other
// replica take over and keep the bundle in the mesh's namespaces: never
// do both lead.
func TestLeaderCutOff(t *testing.T) {
	env := kubeenv.Shared(t)
	admin := env.Client(t)
	const ns = "weft-cutoff"
	env.CreateNamespace(t, ns, nil)
	cfg := installRBAC(t, env, ns)

	var replicas []replica
	var cut []*atomic.Bool
	for _, name := range []string{"a", "b"} {
		off := new(atomic.Bool)
		c := rest.CopyConfig(cfg)
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				if off.Load() {
					return nil, errors.New("cut off from the API server")
				}
				return rt.RoundTrip(r)
			})
		})
		cp, err := NewContext(t.Context(), Options{Kube: c, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
			Logger: testLogger(t).With("replica", name), Namespace: ns, CASecret: install.CASecret, LeaderElection: testElection(name)})
		if err != nil {
			t.Fatal(err)
		}
		replicas, cut = append(replicas, startReplica(t, cp)), append(cut, off)
	}
	leads := func(r replica) bool { return r.Status().Kubernetes.Leadership.Leading }
	var leader int
	within(t, 10*time.Second, "one replica leads", func() error {
		for i, r := range replicas {
			if leads(r) {
				leader = i
				return nil
			}
		}
		return errors.New("no replica leads")
	})
	follower := 1 - leader

	cut[leader].Store(true)
	since := time.Now()
	le := testElection("")
	deadline := since.Add(le.LeaseDuration + le.RenewDeadline)
	var steppedDown time.Duration
	for {
		old, next := leads(replicas[leader]), leads(replicas[follower])
		switch {
		case old && next:
			t.Fatalf("both replicas lead, %s after the leader was cut off", time.Since(since).Round(time.Millisecond))
		case old && time.Since(since) > le.LeaseDuration:
			t.Fatalf("the cut-off leader still leads %s later, when its Lease has run out", time.Since(since).Round(time.Millisecond))
		case !old && steppedDown == 0:
			steppedDown = time.Since(since)
		case time.Now().After(deadline):
			t.Fatalf("the follower does not lead %s after the leader was cut off", time.Since(since).Round(time.Millisecond))
		}
		if next {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the cut-off leader stepped down after %s; the follower led after %s",
		steppedDown.Round(10*time.Millisecond), time.Since(since).Round(10*time.Millisecond))
	env.CreateNamespace(t, "cutoff-shop", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	within(t, 10*time.Second, "the bundle from the new leader", func() error {
		return bundleIn(t.Context(), admin, "cutoff-shop", replicas[follower].ca.BundlePEM())
	})
	cut[leader].Store(false)
}

// TestRotationAcrossReplicas: a root rotation step taken at one replica is
// written to the CA Secret first and read back by the other, whose bundle
// (the leader's, so the ConfigMaps' too) follows; a step taken at a
// replica that has not read the last one yet is refused and undone. A
// join token revoked at one replica is refused at the other too.
func TestRotationAcrossReplicas(t *testing.T) {
	env := kubeenv.Shared(t)
	admin := env.Client(t)
	const ns = "weft-rotation"
	env.CreateNamespace(t, ns, nil)
	env.CreateNamespace(t, "rotation-replicas-shop", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	cfg := installRBAC(t, env, ns)
	start := func(name string, poll time.Duration) replica {
		cp, err := NewContext(t.Context(), Options{Kube: cfg, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
			Logger: testLogger(t).With("replica", name), Namespace: ns, CASecret: install.CASecret, LeaderElection: testElection(name)})
		if err != nil {
			t.Fatal(err)
		}
		cp.caSecret.poll = poll
		return startReplica(t, cp)
	}
	// The leader reads the Secret often; the follower, in this test, never.
	leader := start("a", 200*time.Millisecond)
	within(t, 10*time.Second, "the first replica leads", func() error {
		if !leader.Status().Kubernetes.Leadership.Leading {
			return errors.New("it does not lead")
		}
		return nil
	})
	follower := start("b", time.Hour)

	tok, err := leader.ca.MintToken(identity.TokenClaims{Namespace: "shop", ServiceAccount: "vm", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := follower.ca.VerifyToken(tok)
	if err != nil {
		t.Fatalf("a join token minted at the other replica: %v", err)
	}
	if err := follower.ca.RevokeToken(claims.ID); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "the leader refuses the revoked token", func() error {
		if _, err := leader.ca.VerifyToken(tok); !errors.Is(err, ca.ErrTokenRevoked) {
			return fmt.Errorf("it says %v", err)
		}
		return nil
	})

	if err := follower.ca.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	within(t, 5*time.Second, "the leader reads the new root", func() error {
		if n := len(leader.ca.Bundle()); n != 2 {
			return fmt.Errorf("its bundle holds %d roots", n)
		}
		return nil
	})
	if !bytes.Equal(leader.ca.BundlePEM(), follower.ca.BundlePEM()) || leader.ca.BundleVersion() != follower.ca.BundleVersion() {
		t.Fatal("the replicas' bundles differ")
	}
	within(t, 5*time.Second, "the two-root bundle in the mesh namespace", func() error {
		return bundleIn(t.Context(), admin, "rotation-replicas-shop", leader.ca.BundlePEM())
	})

	if err := leader.ca.ActivateNewRoot(); err != nil {
		t.Fatal(err)
	}
	err = follower.ca.ActivateNewRoot()
	if err == nil || !strings.Contains(err.Error(), "another replica changed the CA") {
		t.Fatalf("a step at a replica behind the Secret: got %v", err)
	}
	if follower.ca.RotationPhase() != "prepared" {
		t.Errorf("the refused step was not undone: phase %q", follower.ca.RotationPhase())
	}
	secret, err := admin.CoreV1().Secrets(ns).Get(t.Context(), install.CASecret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v := ca.FilesVersion(secret.Data); v != leader.ca.BundleVersion() {
		t.Errorf("the Secret holds bundle version %d, the leader %d", v, leader.ca.BundleVersion())
	}
	if string(secret.Data[adminTokenFile]) != leader.adminToken {
		t.Error("the rotation steps lost the admin token from the Secret")
	}
	if ids, err := revokedIn("", secret.Data); err != nil || !slices.Equal(ids, []string{claims.ID}) {
		t.Errorf("the Secret's revocations after the rotation steps: %q, %v", ids, err)
	}
}
