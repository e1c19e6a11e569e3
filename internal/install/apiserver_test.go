package install

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/install/crds"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.RunShared(m)) }

// resources maps the kinds of an installation to their resources.
var resources = map[string]string{
	"Namespace": "namespaces", "CustomResourceDefinition": "customresourcedefinitions", "ServiceAccount": "serviceaccounts",
	"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
	"Secret": "secrets", "Lease": "leases", "Service": "services", "Deployment": "deployments",
	"PodDisruptionBudget": "poddisruptionbudgets", "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
}

// resourceOf is the client of an object's resource, in its namespace.
func resourceOf(t *testing.T, dyn dynamic.Interface, o Object) dynamic.ResourceInterface {
	t.Helper()
	gv, err := schema.ParseGroupVersion(o.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	res, ok := resources[o.Kind]
	if !ok {
		t.Fatalf("no resource for %s", o.Kind)
	}
	r := dyn.Resource(gv.WithResource(res))
	if o.Namespace != "" {
		return r.Namespace(o.Namespace)
	}
	return r
}

// apply applies objects as `kubectl apply --server-side` does, in order.
func apply(t *testing.T, dyn dynamic.Interface, objs []Object) {
	t.Helper()
	for _, o := range objs {
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(o.YAML, &obj.Object); err != nil {
			t.Fatal(err)
		}
		opts := metav1.ApplyOptions{FieldManager: "weft-install-test", Force: true}
		if _, err := resourceOf(t, dyn, o).Apply(t.Context(), o.Name, obj, opts); err != nil {
			t.Fatalf("the API server refuses %s: %v", o, err)
		}
	}
}

// installFor renders an installation for the test API server, with one
// change: the webhook is called at a loopback URL where nothing listens,
// not at the control plane's Service. The API server finds a Service's
// webhook by its DNS name, and a name that resolves at all resolves
// outside the host, where tests must send nothing. So every call fails,
// on loopback, as it would while the control plane is down; Validate is
// what checks the Service reference itself.
func installFor(t *testing.T, o Options) []Object {
	t.Helper()
	o.Image, o.ProxyImage = "registry.example/weft:test", "registry.example/weft-proxy:test"
	objs, err := Render(o)
	if err != nil {
		t.Fatal(err)
	}
	for i, obj := range objs {
		if obj.Kind != "MutatingWebhookConfiguration" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(obj.YAML, &u.Object); err != nil {
			t.Fatal(err)
		}
		hooks, _, _ := unstructured.NestedSlice(u.Object, "webhooks")
		for _, h := range hooks {
			cc := h.(map[string]any)["clientConfig"].(map[string]any)
			delete(cc, "service")
			cc["url"] = "https://127.0.0.1:1" + WebhookPath
		}
		if err := unstructured.SetNestedSlice(u.Object, hooks, "webhooks"); err != nil {
			t.Fatal(err)
		}
		if objs[i].YAML, err = yaml.Marshal(u.Object); err != nil {
			t.Fatal(err)
		}
	}
	return objs
}

// TestInstallOnAnAPIServer applies an installation to a real API server
// and checks what it does there: everything is accepted, the control
// plane's service account may do what it needs and nothing more, and the
// webhook is called for exactly the pods it should be, refusing them or
// letting them through per its failure policy (no control plane runs, so
// every call fails).
func TestInstallOnAnAPIServer(t *testing.T) {
	env := kubeenv.Shared(t)
	dyn, client := env.Dynamic(t), env.Client(t)
	const ns = "weft-install-test"
	apply(t, dyn, installFor(t, Options{Namespace: ns}))

	t.Run("least privilege", func(t *testing.T) {
		cfg := env.UserConfig(t, "system:serviceaccount:"+ns+":"+Name, "system:serviceaccounts", "system:serviceaccounts:"+ns, "system:authenticated")
		sa, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := t.Context()
		allowed := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Errorf("%s: refused: %v", what, err)
			}
		}
		forbidden := func(what string, err error) {
			t.Helper()
			if !apierrors.IsForbidden(err) {
				t.Errorf("%s: want Forbidden, got %v", what, err)
			}
		}
		_, err = sa.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		allowed("list pods", err)
		_, err = sa.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		allowed("list endpointslices", err)
		_, err = sa.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: "x"}}, metav1.CreateOptions{})
		allowed("create tokenreviews", err)
		ca, err := sa.CoreV1().Secrets(ns).Get(ctx, CASecret, metav1.GetOptions{})
		allowed("get its CA secret", err)
		if err == nil {
			ca.Data = map[string][]byte{"ca.crt": []byte("a root")}
			_, err = sa.CoreV1().Secrets(ns).Update(ctx, ca, metav1.UpdateOptions{})
			allowed("update its CA secret", err)
		}
		l, err := sa.CoordinationV1().Leases(ns).Get(ctx, Name, metav1.GetOptions{})
		allowed("get its lease", err)
		if err == nil {
			l.Spec.HolderIdentity = ptr("replica-0")
			_, err = sa.CoordinationV1().Leases(ns).Update(ctx, l, metav1.UpdateOptions{})
			allowed("update its lease", err)
		}
		bundle := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: inject.CABundleConfigMap}, Data: map[string]string{inject.CABundleKey: "a root"}}
		bundle, err = sa.CoreV1().ConfigMaps("default").Create(ctx, bundle, metav1.CreateOptions{})
		allowed("create a CA bundle ConfigMap", err)
		if err == nil {
			_, err = sa.CoreV1().ConfigMaps("default").Update(ctx, bundle, metav1.UpdateOptions{})
			allowed("update a CA bundle ConfigMap", err)
			err = sa.CoreV1().ConfigMaps("default").Delete(ctx, bundle.Name, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
			forbidden("delete a ConfigMap", err)
		}
		_, err = sa.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + inject.CABundleConfigMap})
		allowed("list the CA bundle ConfigMaps", err)
		_, err = sa.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
		forbidden("list every ConfigMap", err)
		_, err = sa.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		forbidden("get another ConfigMap", err)
		_, err = sa.CoreV1().Secrets(ns).Get(ctx, WebhookSecret, metav1.GetOptions{})
		forbidden("get another secret", err)
		_, err = sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
		forbidden("list secrets", err)
		_, err = sa.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "other"}}, metav1.CreateOptions{})
		forbidden("create a lease", err)
		_, err = sa.CoreV1().Pods("default").Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}, metav1.CreateOptions{})
		forbidden("create a pod", err)
		err = sa.CoreV1().Services("default").Delete(ctx, "kubernetes", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		forbidden("delete a service", err)

		sadyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		for _, gvr := range []schema.GroupVersionResource{
			{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
			{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"},
			{Group: "access.smi-spec.io", Version: "v1alpha2", Resource: "traffictargets"},
			{Group: "weft.dev", Version: "v1alpha1", Resource: "authorizationpolicies"},
			{Group: "weft.dev", Version: "v1alpha1", Resource: "ratelimitpolicies"},
			// Served before the create below is refused for the right reason.
			{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"},
		} {
			// A CRD just applied is served a moment after it is created:
			// until then the API server does not know the resource (404),
			// which says nothing of the account's rights.
			var err error
			eventually(t, gvr.Resource+" served", func() bool {
				_, err = sadyn.Resource(gvr).List(ctx, metav1.ListOptions{})
				return !apierrors.IsNotFound(err)
			})
			allowed("list "+gvr.Resource, err)
		}
		_, err = sadyn.Resource(schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"}).Namespace("default").
			Create(ctx, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "weft.dev/v1alpha1", "kind": "RetryPolicy", "metadata": map[string]any{"name": "r"}}}, metav1.CreateOptions{})
		forbidden("create a policy", err)
	})

	t.Run("webhook", func(t *testing.T) {
		env.CreateNamespace(t, "meshed", map[string]string{inject.InjectKey: inject.Enabled})
		env.CreateNamespace(t, "unmeshed", nil)
		pod := func(name string, labels map[string]string) *corev1.Pod {
			return &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}}},
			}
		}
		create := func(ns string, p *corev1.Pod) error {
			// The API server applies a new webhook configuration a moment
			// after it stored it; until then pods pass unasked.
			_, err := client.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
			return err
		}
		// With failurePolicy Fail, a pod of a meshed namespace is refused
		// while the webhook cannot be reached.
		eventually(t, "a pod of a meshed namespace refused", func() bool {
			err := create("meshed", pod("refused", nil))
			return err != nil && strings.Contains(err.Error(), WebhookName)
		})
		for _, tc := range []struct {
			ns  string
			pod *corev1.Pod
		}{
			{"meshed", pod("opted-out", map[string]string{inject.InjectKey: inject.Disabled})},
			{"meshed", pod("control-plane", map[string]string{ControlPlaneLabel: "true"})},
			{"unmeshed", pod("outside", nil)},
		} {
			if err := create(tc.ns, tc.pod); err != nil {
				t.Errorf("pod %s/%s: the webhook was called for it: %v", tc.ns, tc.pod.Name, err)
			}
		}
		// With Ignore, the same pod starts, unmeshed.
		apply(t, dyn, installFor(t, Options{Namespace: ns, FailurePolicy: "Ignore"}))
		eventually(t, "a pod of a meshed namespace admitted with Ignore", func() bool {
			return create("meshed", pod("ignored", nil)) == nil
		})
	})

	t.Run("uninstall", func(t *testing.T) {
		objs, err := Uninstall(UninstallOptions{Namespace: ns, CRDs: []crds.Set{}})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if err := resourceOf(t, dyn, o).Delete(t.Context(), o.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("deleting %s: %v", o, err)
			}
		}
		if _, err := client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(t.Context(), WebhookConfiguration, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the webhook configuration is still there: %v", err)
		}
		// With the CRDs kept, weft's kinds are still served.
		if _, err := dyn.Resource(schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"}).List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("weft's CRDs went with --crds=: %v", err)
		}
	})
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not after 30s", what)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
