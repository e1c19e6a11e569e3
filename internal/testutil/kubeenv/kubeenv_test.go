package kubeenv

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/testutil/ports"
)

// The tests but TestStartIsolated share one API server, as a package
// whose tests each need one would.
func TestMain(m *testing.M) { os.Exit(RunShared(m)) }

// eventually retries f until it returns nil or the time is up: the API
// server applies some writes (RBAC bindings, webhook configurations, CRDs)
// through informers, a moment after it acknowledged them.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after 30s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestSharedIsOne(t *testing.T) {
	e := Shared(t)
	if Shared(t) != e {
		t.Fatal("Shared started a second API server")
	}
	if !e.Running() {
		t.Fatal("the shared etcd or kube-apiserver is not running")
	}
	v, err := e.Client(t).Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if v.GitVersion != "v1.36.1" {
		t.Errorf("server version %q, want v1.36.1 (tools/kube's k8s.io/kubernetes)", v.GitVersion)
	}
	// The API server gives the kubernetes Service the first address of
	// the service range, which must be in 198.18.0.0/15.
	// (Its Endpoints stay empty: validation refuses the advertised
	// 127.0.0.1, as a loopback address, and the API server logs so.)
	var svc *corev1.Service
	eventually(t, "the kubernetes Service", func() (err error) {
		svc, err = e.Client(t).CoreV1().Services("default").Get(t.Context(), "kubernetes", metav1.GetOptions{})
		return err
	})
	if svc.Spec.ClusterIP != "198.18.128.1" {
		t.Errorf("the kubernetes Service's cluster IP is %s, want 198.18.128.1 (the first of %s)", svc.Spec.ClusterIP, ServiceCIDR)
	}
}

// TestServiceAccountTokens is identity in Kubernetes mode: a projected
// token for audience weft, checked with a TokenReview for that audience.
func TestServiceAccountTokens(t *testing.T) {
	e := Shared(t)
	ctx := t.Context()
	c := e.Client(t)
	e.CreateNamespace(t, "tokens", nil)
	sa, err := c.CoreV1().ServiceAccounts("tokens").Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "catalog"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a ServiceAccount: %v", err)
	}

	tr, err := c.CoreV1().ServiceAccounts("tokens").CreateToken(ctx, "catalog", &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"weft"}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	if tr.Status.Token == "" {
		t.Fatal("TokenRequest returned no token")
	}

	review := func(token string, audiences ...string) authenticationv1.TokenReviewStatus {
		t.Helper()
		r, err := c.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{
			Spec: authenticationv1.TokenReviewSpec{Token: token, Audiences: audiences},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("TokenReview: %v", err)
		}
		return r.Status
	}
	st := review(tr.Status.Token, "weft")
	if !st.Authenticated {
		t.Fatalf("TokenReview for audience weft: not authenticated (%s)", st.Error)
	}
	if want := "system:serviceaccount:tokens:catalog"; st.User.Username != want {
		t.Errorf("TokenReview user %q, want %q", st.User.Username, want)
	}
	if st.User.UID != string(sa.UID) {
		t.Errorf("TokenReview UID %q, want the ServiceAccount's %q", st.User.UID, sa.UID)
	}
	if !slices.Equal(st.Audiences, []string{"weft"}) {
		t.Errorf("TokenReview audiences %v, want [weft]", st.Audiences)
	}
	if st := review(tr.Status.Token, "someone-else"); st.Authenticated {
		t.Error("a token for audience weft passed a TokenReview for another audience")
	}
	if st := review(tr.Status.Token + "x"); st.Authenticated {
		t.Error("a tampered token passed a TokenReview")
	}

	// A token for weft is not one for the API server: it must not let
	// whoever weft shows it to act as the workload.
	weftOnly, err := kubernetes.NewForConfig(e.TokenConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := weftOnly.CoreV1().Pods("tokens").List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("the API server took a token for audience weft: %v, want Unauthorized", err)
	}

	// A token for the API server's own audience is the workload's
	// identity there, and RBAC gives it nothing yet.
	apiTR, err := c.CoreV1().ServiceAccounts("tokens").CreateToken(ctx, "catalog", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for the API server's audience: %v", err)
	}
	asSA, err := kubernetes.NewForConfig(e.TokenConfig(apiTR.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	self, err := asSA.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectReview as the ServiceAccount: %v", err)
	}
	if got := self.Status.UserInfo.Username; got != "system:serviceaccount:tokens:catalog" {
		t.Errorf("the API server sees the token's bearer as %q", got)
	}
	if _, err := asSA.CoreV1().Pods("tokens").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a ServiceAccount with no role listed pods: %v, want Forbidden", err)
	}
}

// TestUserRBAC: a user of a client certificate is allowed what a
// RoleBinding gives it and nothing more.
func TestUserRBAC(t *testing.T) {
	e := Shared(t)
	ctx := t.Context()
	c := e.Client(t)
	e.CreateNamespace(t, "rbac", nil)
	alice, err := kubernetes.NewForConfig(e.UserConfig(t, "alice", "weft-testers"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CoreV1().Pods("rbac").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("alice listed pods with no role: %v, want Forbidden", err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"list"}}},
	}
	if _, err := c.RbacV1().Roles("rbac").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a Role: %v", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "testers-read-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "pod-reader"},
		Subjects:   []rbacv1.Subject{{Kind: "Group", APIGroup: "rbac.authorization.k8s.io", Name: "weft-testers"}},
	}
	if _, err := c.RbacV1().RoleBindings("rbac").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a RoleBinding: %v", err)
	}
	eventually(t, "alice lists pods through her group's RoleBinding", func() error {
		_, err := alice.CoreV1().Pods("rbac").List(ctx, metav1.ListOptions{})
		return err
	})
	if _, err := alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice listed pods in a namespace her binding is not in: %v, want Forbidden", err)
	}
	if _, err := alice.CoreV1().Secrets("rbac").List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("alice listed secrets with a role for pods: %v, want Forbidden", err)
	}
}

// TestCustomResource: a CRD is served, and its OpenAPI schema is enforced.
func TestCustomResource(t *testing.T) {
	e := Shared(t)
	ctx := t.Context()
	dyn := e.Dynamic(t)
	e.CreateNamespace(t, "crd", nil)

	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata":   map[string]any{"name": "meshprobes.test.weft.io"},
		"spec": map[string]any{
			"group": "test.weft.io",
			"scope": "Namespaced",
			"names": map[string]any{"plural": "meshprobes", "singular": "meshprobe", "kind": "MeshProbe", "listKind": "MeshProbeList"},
			"versions": []any{map[string]any{
				"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{"spec": map[string]any{
						"type":     "object",
						"required": []any{"port"},
						"properties": map[string]any{"port": map[string]any{
							"type": "integer", "minimum": int64(1), "maximum": int64(65535),
						}},
					}},
				}},
			}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(ctx, crd, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating a CRD: %v", err)
	}
	eventually(t, "the CRD is established", func() error {
		got, err := dyn.Resource(crdGVR).Get(ctx, "meshprobes.test.weft.io", metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
		for _, c := range conds {
			if m, _ := c.(map[string]any); m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", conds)
	})

	gvr := schema.GroupVersionResource{Group: "test.weft.io", Version: "v1", Resource: "meshprobes"}
	probe := func(name string, port int64) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "test.weft.io/v1",
			"kind":       "MeshProbe",
			"metadata":   map[string]any{"name": name},
			"spec":       map[string]any{"port": port},
		}}
	}
	// Established can come a moment before the handler serves the kind.
	eventually(t, "creating a MeshProbe", func() error {
		_, err := dyn.Resource(gvr).Namespace("crd").Create(ctx, probe("ok", 8080), metav1.CreateOptions{})
		return err
	})
	got, err := dyn.Resource(gvr).Namespace("crd").Get(ctx, "ok", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the MeshProbe back: %v", err)
	}
	if port, _, _ := unstructured.NestedInt64(got.Object, "spec", "port"); port != 8080 {
		t.Errorf("stored port %d, want 8080", port)
	}
	_, err = dyn.Resource(gvr).Namespace("crd").Create(ctx, probe("bad", 70000), metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Errorf("a MeshProbe with port 70000: %v, want Invalid by the CRD's schema", err)
	}
}

// TestMutatingWebhook is the admission flow weft's injection is built on:
// the API server calls a webhook over TLS when a Pod is created and
// stores the Pod as the webhook's patch leaves it, here with a native
// sidecar (an init container that restarts always).
func TestMutatingWebhook(t *testing.T) {
	e := Shared(t)
	ctx := t.Context()
	c := e.Client(t)
	e.CreateNamespace(t, "webhook", map[string]string{"weft-test/inject": "enabled"})

	var (
		mu    sync.Mutex
		calls []*admissionv1.AdmissionRequest
	)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("not an AdmissionReview: %v", err), http.StatusBadRequest)
			return
		}
		mu.Lock()
		calls = append(calls, review.Request)
		mu.Unlock()
		patch := `[
			{"op": "add", "path": "/metadata/labels/weft.io~1injected", "value": "true"},
			{"op": "add", "path": "/spec/initContainers", "value": [
				{"name": "weft-proxy", "image": "weft-proxy:test", "restartPolicy": "Always"}
			]}
		]`
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{
			UID: review.Request.UID, Allowed: true, Patch: []byte(patch), PatchType: &pt,
		}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		if err := json.NewEncoder(w).Encode(review); err != nil {
			t.Errorf("webhook: writing the response: %v", err)
		}
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caBundle := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	url := srv.URL + "/inject"
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "kubeenv-test-inject"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.test.weft.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			// Only the namespace of this test: the package's other tests
			// share the API server.
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"weft-test/inject": "enabled"}},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
		}},
	}
	if _, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, cfg, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating the MutatingWebhookConfiguration: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is over by the time cleanups run.
		err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
		if err != nil {
			t.Errorf("deleting the MutatingWebhookConfiguration: %v", err)
		}
	})

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": "demo"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "demo:test"}}},
		}
	}
	// The API server loads webhook configurations through an informer: a
	// dry run (which calls webhooks with no side effects too) shows when
	// it has this one.
	eventually(t, "the API server calls the webhook", func() error {
		p, err := c.CoreV1().Pods("webhook").Create(ctx, pod("dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if p.Labels["weft.io/injected"] != "true" {
			return errors.New("a Pod was admitted unmutated")
		}
		return nil
	})

	created, err := c.CoreV1().Pods("webhook").Create(ctx, pod("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a Pod: %v", err)
	}
	stored, err := c.CoreV1().Pods("webhook").Get(ctx, created.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the Pod back: %v", err)
	}
	if stored.Labels["weft.io/injected"] != "true" || stored.Labels["app"] != "demo" {
		t.Errorf("stored Pod's labels %v, want app=demo and weft.io/injected=true", stored.Labels)
	}
	if ic := stored.Spec.InitContainers; len(ic) != 1 || ic[0].Name != "weft-proxy" ||
		ic[0].RestartPolicy == nil || *ic[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("stored Pod's init containers %+v, want the weft-proxy native sidecar", ic)
	}

	mu.Lock()
	defer mu.Unlock()
	var real *admissionv1.AdmissionRequest
	for _, r := range calls {
		if r.Name == "web" && (r.DryRun == nil || !*r.DryRun) {
			real = r
		}
	}
	if real == nil {
		t.Fatalf("the webhook saw no request for the Pod web (%d calls)", len(calls))
	}
	if real.Namespace != "webhook" || real.Operation != admissionv1.Create || real.Kind.Kind != "Pod" {
		t.Errorf("webhook request: %s %s in %q, want CREATE Pod in webhook", real.Operation, real.Kind.Kind, real.Namespace)
	}
	if !slices.Contains(real.UserInfo.Groups, "system:masters") {
		t.Errorf("webhook request's user %+v, want the admin who created the Pod", real.UserInfo)
	}

	// Outside the selected namespace the webhook is not called.
	e.CreateNamespace(t, "no-webhook", nil)
	plain, err := c.CoreV1().Pods("no-webhook").Create(ctx, pod("web"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a Pod outside the webhook's namespaces: %v", err)
	}
	if _, ok := plain.Labels["weft.io/injected"]; ok {
		t.Error("a Pod outside the webhook's namespace selector was mutated")
	}
}

// TestStartIsolated: tests that each start their own get their own, on
// ports that do not collide, even when they start at once; and each is
// gone (processes and files) when its test ends.
func TestStartIsolated(t *testing.T) {
	need(t) // skips here, not in each subtest, which would leave none to check
	var (
		mu   sync.Mutex
		envs []*Env
	)
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				e := Start(t)
				mu.Lock()
				envs = append(envs, e)
				mu.Unlock()
				// The same name in both: with a store in common, the
				// second create would find the first's namespace.
				e.CreateNamespace(t, "isolated", map[string]string{"env": strconv.Itoa(i)})
				ns, err := e.Client(t).CoreV1().Namespaces().Get(t.Context(), "isolated", metav1.GetOptions{})
				if err != nil {
					t.Fatalf("reading the namespace back: %v", err)
				}
				if ns.Labels["env"] != strconv.Itoa(i) {
					t.Errorf("namespace of env %s in env %d", ns.Labels["env"], i)
				}
			})
		}
	})
	if len(envs) != 2 {
		t.Fatalf("%d of 2 started", len(envs))
	}
	if envs[0].URL == envs[1].URL {
		t.Errorf("both API servers at %s", envs[0].URL)
	}
	for _, e := range envs {
		if e.Running() {
			t.Errorf("%s still runs after its test ended", e.URL)
		}
		if _, err := os.Stat(e.dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("its directory %s is still there (%v)", e.dir, err)
		}
	}
}

// TestMissingBinarySkips: away from CI, a machine without the binaries
// skips these tests, saying what is missing, and does not fail them.
func TestMissingBinarySkips(t *testing.T) {
	ok := t.Run("inner", func(t *testing.T) {
		t.Setenv("CI", "")
		t.Setenv("WEFT_KUBE_APISERVER", filepath.Join(t.TempDir(), "kube-apiserver"))
		need(t)
		t.Error("need did not skip with no kube-apiserver")
	})
	if !ok {
		t.Error("a missing kube-apiserver failed the test instead of skipping it")
	}
}

// TestPortTakenIsRetried: when a port ports.Free handed out is taken
// before etcd listens on it, the start is told so (and tries other ports)
// rather than failing.
func TestPortTakenIsRetried(t *testing.T) {
	bins := need(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := t.TempDir()
	url := "http://" + l.Addr().String()
	p, err := startProcess("etcd", bins.etcd, []string{
		"--data-dir=" + filepath.Join(dir, "data"),
		"--listen-client-urls=" + url, "--advertise-client-urls=" + url,
		"--listen-peer-urls=http://127.0.0.1:" + strconv.Itoa(ports.Free(t)),
	}, filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.kill()
	err = p.waitReady(t.Context(), http.DefaultClient, url+"/health", `"true"`)
	if !errors.Is(err, errPortTaken) {
		t.Fatalf("etcd on a taken port: %v, want errPortTaken", err)
	}
}

// TestRemoveStale: the directory of an Env whose test binary died is
// removed by the next start; a live binary's is kept.
func TestRemoveStale(t *testing.T) {
	root := t.TempDir()
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	for name, pid := range map[string]int{"kubeenv-dead": gone.Process.Pid, "kubeenv-live": os.Getpid()} {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Join(dir, "etcd-0"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(pid)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	removeStale(root)
	if _, err := os.Stat(filepath.Join(root, "kubeenv-dead")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the dead binary's directory is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(root, "kubeenv-live")); err != nil {
		t.Errorf("the live binary's directory: %v", err)
	}
}
