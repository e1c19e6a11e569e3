package kube

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	installcrds "github.com/weftmesh/weft/internal/install/crds"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.RunShared(m)) }

var namespaces atomic.Int64

// namespace names a namespace of the shared API server no other test, nor
// an earlier run of this one (-count), has used.
func namespace(prefix string) string {
	return fmt.Sprintf("%s-%d", prefix, namespaces.Add(1))
}

// eventually polls cond until it holds or the generous timeout passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	eventuallyWithin(t, 20*time.Second, what, cond)
}

func eventuallyWithin(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pod is a meshed Pod as the injector leaves it, with the status a
// kubelet would write.
func pod(name, ip string, ready bool, labels map[string]string) (*corev1.Pod, corev1.PodStatus) {
	always := corev1.ContainerRestartPolicyAlways
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{
				InitContainers: []corev1.Container{{Name: "weft-proxy", Image: "weft-proxy", RestartPolicy: &always,
					Ports: []corev1.ContainerPort{{Name: "weft-inbound", ContainerPort: 4143}, {Name: "weft-admin", ContainerPort: 4191}}}},
				Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
			},
		}, corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}}
}

// createPod creates a Pod and writes its status, playing kubelet.
func createPod(t *testing.T, c kubernetes.Interface, ns string, p *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	created, err := c.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	setPodStatus(t, c, created, st)
}

func setPodStatus(t *testing.T, c kubernetes.Interface, p *corev1.Pod, st corev1.PodStatus) {
	t.Helper()
	cur, err := c.CoreV1().Pods(p.Namespace).Get(t.Context(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status = st
	if _, err := c.CoreV1().Pods(p.Namespace).UpdateStatus(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func startSource(t *testing.T, env *kubeenv.Env) (*model.Store, *Source) {
	t.Helper()
	return startSourceAs(t, env.Client(t), env.Dynamic(t))
}

func startSourceAs(t *testing.T, client kubernetes.Interface, dyn dynamic.Interface) (*model.Store, *Source) {
	t.Helper()
	store := model.NewStore()
	src, err := New(Options{Client: client, Dynamic: dyn, Store: store, Debounce: 10 * time.Millisecond, Rediscover: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-src.Synced():
	case err := <-done:
		t.Fatalf("Run ended before it synced: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the source did not sync")
	}
	return store, src
}

func endpointIDs(store *model.Store, svc model.Ref) (string, error) {
	st, ok := store.Snapshot().Service(svc)
	if !ok {
		return "", fmt.Errorf("no service %s", svc)
	}
	var ids []string
	for _, e := range st.Endpoints {
		ids = append(ids, e.ID+"@"+e.HostPort())
	}
	return strings.Join(ids, ","), nil
}

// slice writes a Service's EndpointSlice, as the EndpointSlice controller
// would, creating it the first time.
func slice(t *testing.T, c kubernetes.Interface, ns, svc string, eps ...discoveryv1.Endpoint) {
	t.Helper()
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-x1", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   eps,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	cur, err := c.DiscoveryV1().EndpointSlices(ns).Get(t.Context(), sl.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = c.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), sl, metav1.CreateOptions{})
	case err == nil:
		sl.ResourceVersion = cur.ResourceVersion
		_, err = c.DiscoveryV1().EndpointSlices(ns).Update(t.Context(), sl, metav1.UpdateOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

// sliceEndpoint is a Pod's endpoint with the conditions the EndpointSlice
// controller writes: ready is serving and not terminating.
func sliceEndpoint(podName, ip string, serving, terminating bool) discoveryv1.Endpoint {
	ep := discoveryv1.Endpoint{Addresses: []string{ip},
		Conditions: discoveryv1.EndpointConditions{Ready: new(serving && !terminating), Serving: new(serving), Terminating: new(terminating)}}
	if podName != "" {
		ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Name: podName}
	}
	return ep
}

func createService(t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": name},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
	}}
	if _, err := c.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestServicesAndPods: Services and meshed Pods of a namespace that opts
// in become the model's Services and Workloads, a Pod that is not ready
// included (its proxy needs its config); another namespace's stay out; a
// Pod deleted leaves.
func TestServicesAndPods(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	shopNS, legacyNS := namespace("shop"), namespace("legacy")
	env.CreateNamespace(t, shopNS, map[string]string{NamespaceLabel: NamespaceEnabled})
	env.CreateNamespace(t, legacyNS, nil)
	for _, ns := range []string{shopNS, legacyNS} {
		createService(t, c, ns, "catalog")
	}
	p0, st0 := pod("catalog-0", "198.18.10.5", true, map[string]string{"app": "catalog"})
	createPod(t, c, shopNS, p0, st0)
	slice(t, c, shopNS, "catalog", sliceEndpoint("catalog-0", "198.18.10.5", true, false))
	// Not meshed, in a namespace that did not opt in: never read.
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "catalog-0", Labels: map[string]string{"app": "catalog"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if _, err := c.CoreV1().Pods(legacyNS).Create(t.Context(), plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	store, src := startSource(t, env)
	shop := model.Ref{Namespace: shopNS, Name: "catalog"}
	if got, err := endpointIDs(store, shop); err != nil || got != shopNS+"/catalog-0@198.18.10.5:4143" {
		t.Fatalf("after the first sync: endpoints %q, %v", got, err)
	}
	if _, ok := store.Snapshot().Service(model.Ref{Namespace: legacyNS, Name: "catalog"}); ok {
		t.Error("a Service of a namespace outside the mesh is in the model")
	}
	if st, _ := store.Snapshot().Service(shop); st.Service.ClusterIPs == nil {
		t.Error("the Service's cluster IP did not reach the model")
	}

	p1, st1 := pod("catalog-1", "198.18.10.6", false, map[string]string{"app": "catalog"})
	createPod(t, c, shopNS, p1, st1)
	eventually(t, "catalog-1, not ready, in the model", func() error {
		if _, ok := store.Snapshot().Workload(model.Ref{Namespace: shopNS, Name: "catalog-1"}); !ok {
			return fmt.Errorf("no workload catalog-1")
		}
		return nil
	})
	if err := c.CoreV1().Pods(shopNS).Delete(t.Context(), "catalog-1", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "catalog-1 gone", func() error {
		if _, ok := store.Snapshot().Workload(model.Ref{Namespace: shopNS, Name: "catalog-1"}); ok {
			return fmt.Errorf("workload catalog-1 still in the model")
		}
		return nil
	})
	if p := src.Status().Problems; len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
}

// TestEndpointSlices: a Service's endpoints are the meshed Pods its
// EndpointSlices list as ready; not the ones not ready or terminating,
// nor a ready Pod no slice lists. A ready endpoint that is no meshed Pod
// is reported, since meshed callers cannot reach it.
func TestEndpointSlices(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	ns := namespace("slices")
	env.CreateNamespace(t, ns, map[string]string{NamespaceLabel: NamespaceEnabled})
	createService(t, c, ns, "catalog")
	labels := map[string]string{"app": "catalog"}
	ips := map[string]string{"catalog-0": "198.18.11.1", "catalog-1": "198.18.11.2", "catalog-2": "198.18.11.3", "catalog-3": "198.18.11.4"}
	for name, ip := range ips {
		p, st := pod(name, ip, name != "catalog-1", labels)
		createPod(t, c, ns, p, st)
	}
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "legacy-0", Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if _, err := c.CoreV1().Pods(ns).Create(t.Context(), plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	store, src := startSource(t, env)
	svc := model.Ref{Namespace: ns, Name: "catalog"}
	ep := func(name string) string { return ns + "/" + name + "@" + ips[name] + ":4143" }
	if got, err := endpointIDs(store, svc); err != nil || got != "" {
		t.Fatalf("before any EndpointSlice: endpoints %q, %v; want none", got, err)
	}

	// catalog-3 is ready but in no slice (its readiness gate, say, is not
	// met): not an endpoint.
	slice(t, c, ns, "catalog",
		sliceEndpoint("catalog-0", ips["catalog-0"], true, false),
		sliceEndpoint("catalog-1", ips["catalog-1"], false, false),
		sliceEndpoint("catalog-2", ips["catalog-2"], true, true),
		sliceEndpoint("legacy-0", "198.18.11.9", true, false))
	eventually(t, "the ready meshed endpoint only", func() error {
		if got, _ := endpointIDs(store, svc); got != ep("catalog-0") {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})
	eventually(t, "the unmeshed endpoint reported", func() error {
		for _, p := range src.Status().Problems {
			if p.Object == (manifest.Key{Kind: manifest.KindService, Ref: svc}).String() && strings.Contains(p.Message, "1 ready endpoint(s)") {
				return nil
			}
		}
		return fmt.Errorf("problems %v", src.Status().Problems)
	})

	slice(t, c, ns, "catalog",
		sliceEndpoint("catalog-0", ips["catalog-0"], true, false),
		sliceEndpoint("catalog-1", ips["catalog-1"], true, false),
		// A slice written by hand may name a Pod by its IP only.
		sliceEndpoint("", ips["catalog-3"], true, false))
	eventually(t, "endpoints added", func() error {
		if got, _ := endpointIDs(store, svc); got != ep("catalog-0")+","+ep("catalog-1")+","+ep("catalog-3") {
			return fmt.Errorf("endpoints %q", got)
		}
		if p := src.Status().Problems; len(p) != 0 {
			return fmt.Errorf("problems %v", p)
		}
		return nil
	})

	slice(t, c, ns, "catalog", sliceEndpoint("catalog-3", ips["catalog-3"], true, true))
	eventually(t, "endpoints removed", func() error {
		if got, _ := endpointIDs(store, svc); got != "" {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})
}

var crds = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// retryPolicyCRD is a CRD for weft's RetryPolicy that leaves validation
// to weft, so the test can show what weft does with a bad object.
func retryPolicyCRD() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": "retrypolicies.weft.dev"},
		"spec": map[string]any{
			"group": "weft.dev", "scope": "Namespaced",
			"names": map[string]any{"plural": "retrypolicies", "singular": "retrypolicy", "kind": "RetryPolicy"},
			"versions": []any{map[string]any{"name": "v1alpha1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
}

func retryPolicy(ns string, attempts int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "weft.dev/v1alpha1", "kind": "RetryPolicy",
		"metadata": map[string]any{"name": "catalog-retries", "namespace": ns},
		"spec": map[string]any{
			"targetRef": map[string]any{"kind": "Service", "name": "catalog"},
			"retryOn":   []any{"5xx"}, "attempts": attempts,
		},
	}}
}

// TestPolicies: a policy kind whose CRD comes after the source started is
// watched once served; its objects reach the model; an invalid edit is
// reported and the version last applied stays.
func TestPolicies(t *testing.T) {
	env := kubeenv.Shared(t)
	dyn := env.Dynamic(t)
	bank := namespace("bank")
	env.CreateNamespace(t, bank, map[string]string{NamespaceLabel: NamespaceEnabled})
	store, src := startSource(t, env)

	if _, err := dyn.Resource(crds).Create(t.Context(), retryPolicyCRD(), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"}
	var rp dynamic.ResourceInterface = dyn.Resource(gvr).Namespace(bank)
	eventually(t, "the RetryPolicy CRD served", func() error {
		_, err := rp.Create(t.Context(), retryPolicy(bank, 2), metav1.CreateOptions{})
		return err
	})
	key := model.PolicyKey{Kind: model.KindRetryPolicy, Ref: model.Ref{Namespace: bank, Name: "catalog-retries"}}
	attempts := func() (uint32, error) {
		p, ok := store.Snapshot().Policy(key)
		if !ok {
			return 0, fmt.Errorf("no %s in the model", key)
		}
		return p.(*model.RetryPolicy).Attempts, nil
	}
	eventually(t, "the RetryPolicy in the model", func() error {
		if n, err := attempts(); err != nil || n != 2 {
			return fmt.Errorf("attempts %d, %v", n, err)
		}
		return nil
	})

	cur, err := rp.Get(t.Context(), "catalog-retries", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(cur.Object, int64(-1), "spec", "attempts"); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Update(t.Context(), cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the bad edit reported", func() error {
		for _, p := range src.Status().Problems {
			if strings.Contains(p.Message, "spec.attempts") {
				return nil
			}
		}
		return fmt.Errorf("problems %v", src.Status().Problems)
	})
	if n, err := attempts(); err != nil || n != 2 {
		t.Errorf("after a bad edit: attempts %d, %v; want the last good 2", n, err)
	}
	if err := rp.Delete(t.Context(), "catalog-retries", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the RetryPolicy gone", func() error {
		if _, err := attempts(); err == nil {
			return fmt.Errorf("still in the model")
		}
		return nil
	})
}

// installCRD applies one of weft's CRDs (internal/install/crds) and waits
// until it is served. A CRD another test installed first stays.
func installCRD(t *testing.T, env *kubeenv.Env, file string, gvr schema.GroupVersionResource) {
	t.Helper()
	files, err := installcrds.Files(installcrds.Sets...)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(files, func(f installcrds.File) bool { return f.Name == file })
	if i < 0 {
		t.Fatalf("no CRD file %s", file)
	}
	var crd unstructured.Unstructured
	if err := yaml.Unmarshal(files[i].Data, &crd.Object); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Dynamic(t).Resource(crds).Create(t.Context(), &crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	eventually(t, gvr.Resource+" served", func() error {
		_, err := env.Dynamic(t).Resource(gvr).List(t.Context(), metav1.ListOptions{Limit: 1})
		return err
	})
}

var authorizationPolicies = schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "authorizationpolicies"}

func authorizationPolicy(ns, name, target string, from ...string) *unstructured.Unstructured {
	var sources []any
	for _, f := range from {
		sources = append(sources, map[string]any{"serviceAccount": f})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "weft.dev/v1alpha1", "kind": "AuthorizationPolicy",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"targetRef": map[string]any{"kind": "ServiceAccount", "name": target},
			"rules":     []any{map[string]any{"from": sources}},
		},
	}}
}

// TestServiceAccounts: an AuthorizationPolicy naming a service account
// that does not exist is reported, and no longer once the account is
// made; so is a meshed Pod whose account is gone.
func TestServiceAccounts(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	ns := namespace("accounts")
	env.CreateNamespace(t, ns, map[string]string{NamespaceLabel: NamespaceEnabled})
	installCRD(t, env, "weft.dev_authorizationpolicies.yaml", authorizationPolicies)
	for _, sa := range []string{"catalog", "web"} {
		if _, err := c.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p, st := pod("catalog-0", "198.18.12.1", true, map[string]string{"app": "catalog"})
	p.Spec.ServiceAccountName = "catalog"
	createPod(t, c, ns, p, st)
	if _, err := env.Dynamic(t).Resource(authorizationPolicies).Namespace(ns).Create(t.Context(),
		authorizationPolicy(ns, "catalog-callers", "catalog", "web", "chekout"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, src := startSource(t, env)
	problems := func() string {
		var out []string
		for _, p := range src.Status().Problems {
			out = append(out, p.Object+": "+p.Message)
		}
		return strings.Join(out, "\n")
	}
	policy := "authorizationpolicy " + ns + "/catalog-callers: names service accounts that do not exist: " + ns + "/chekout"
	eventually(t, "the misspelt account reported", func() error {
		if got := problems(); got != policy {
			return fmt.Errorf("problems %q, want %q", got, policy)
		}
		return nil
	})

	if _, err := c.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chekout"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.CoreV1().ServiceAccounts(ns).Delete(t.Context(), "catalog", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The policy's target is the account gone.
	want := "authorizationpolicy " + ns + "/catalog-callers: names service accounts that do not exist: " + ns + "/catalog\n" +
		"workload " + ns + "/catalog-0: service account " + ns + "/catalog does not exist: its proxy cannot be certified"
	eventually(t, "the account made, the Pod's gone", func() error {
		if got := problems(); got != want {
			return fmt.Errorf("problems %q, want %q", got, want)
		}
		return nil
	})
}

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

func httpRoute(ns, name, backend string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "catalog", "port": int64(80)}},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/" + name}}},
				"backendRefs": []any{map[string]any{"name": backend, "port": int64(80)}},
			}},
		},
	}}
}

var grpcRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"}

func grpcRoute(ns, name, backend string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GRPCRoute",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "catalog", "port": int64(80)}},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"method": map[string]any{"service": "shop.Stock"}}},
				"backendRefs": []any{map[string]any{"name": backend, "port": int64(80)}},
			}},
		},
	}}
}

// conditions reads an object's conditions as "Type=Status/Reason@generation",
// from status.conditions or from its one status.parents[] entry of weft's.
func conditions(u *unstructured.Unstructured) string {
	list, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
	for _, p := range parents {
		p := p.(map[string]any)
		if p["controllerName"] == string(ControllerName) {
			list, _, _ = unstructured.NestedSlice(p, "conditions")
		}
	}
	var out []string
	for _, c := range list {
		c := c.(map[string]any)
		out = append(out, fmt.Sprintf("%s=%s/%s@%d", c["type"], c["status"], c["reason"], c["observedGeneration"]))
	}
	return strings.Join(out, ",")
}

// TestStatus: the status writer writes what the mesh made of each route
// and policy on the object: a good HTTPRoute is Accepted, one (or a
// GRPCRoute) with an unknown backend has ResolvedRefs=False until the
// backend comes, one
// weft cannot take is not Accepted, an AuthorizationPolicy naming a
// missing account has ResolvedRefs=False. It writes once per change and
// not again for a change that changes nothing of it.
func TestStatus(t *testing.T) {
	env := kubeenv.Shared(t)
	c, dyn := env.Client(t), env.Dynamic(t)
	ns := namespace("status")
	env.CreateNamespace(t, ns, map[string]string{NamespaceLabel: NamespaceEnabled})
	installCRD(t, env, "gateway.networking.k8s.io_httproutes.yaml", httpRoutes)
	installCRD(t, env, "weft.dev_authorizationpolicies.yaml", authorizationPolicies)
	createService(t, c, ns, "catalog")
	routes := dyn.Resource(httpRoutes).Namespace(ns)
	unsupported := httpRoute(ns, "unsupported", "catalog")
	if err := unstructured.SetNestedSlice(unsupported.Object, []any{map[string]any{"group": "", "kind": "Service", "name": "catalog", "sectionName": "http"}}, "spec", "parentRefs"); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*unstructured.Unstructured{httpRoute(ns, "good", "catalog"), httpRoute(ns, "unknown-backend", "catalog-v2"), unsupported} {
		if _, err := routes.Create(t.Context(), r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	installCRD(t, env, "gateway.networking.k8s.io_grpcroutes.yaml", grpcRoutes)
	grpc := dyn.Resource(grpcRoutes).Namespace(ns)
	if _, err := grpc.Create(t.Context(), grpcRoute(ns, "grpc-unknown-backend", "stock"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	policies := dyn.Resource(authorizationPolicies).Namespace(ns)
	if _, err := policies.Create(t.Context(), authorizationPolicy(ns, "catalog-callers", "default", "web"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A Gateway's controller has written its part of good's status.
	good, err := routes.Get(t.Context(), "good", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	theirs := map[string]any{"controllerName": "example.net/gateway", "parentRef": map[string]any{"name": "public"},
		"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "",
			"lastTransitionTime": "2026-01-01T00:00:00Z", "observedGeneration": int64(1)}}}
	good.Object["status"] = map[string]any{"parents": []any{theirs}}
	if _, err := routes.UpdateStatus(t.Context(), good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := routes.List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Every write of the routes' status, counted by the API server's watch.
	watch, err := routes.Watch(t.Context(), metav1.ListOptions{ResourceVersion: list.GetResourceVersion()})
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Stop()
	var mu sync.Mutex
	writes := map[string]int{}
	go func() {
		for ev := range watch.ResultChan() {
			if u, ok := ev.Object.(*unstructured.Unstructured); ok && ev.Type == "MODIFIED" {
				mu.Lock()
				writes[u.GetName()]++
				mu.Unlock()
			}
		}
	}()

	_, src := startSource(t, env)
	runStatusWriter(t, src)
	expect := func(res dynamic.ResourceInterface, name, want string) {
		t.Helper()
		eventually(t, name+" status", func() error { return hasConditions(t, res, name, want) })
	}
	// settled checks the writes each route's status took, once nothing
	// has changed for a while.
	settled := func(want map[string]int) {
		t.Helper()
		time.Sleep(time.Second)
		mu.Lock()
		defer mu.Unlock()
		if !maps.Equal(writes, want) {
			t.Errorf("status writes %v, want %v", writes, want)
		}
	}
	expect(routes, "good", "Accepted=True/Accepted@1,ResolvedRefs=True/ResolvedRefs@1")
	expect(routes, "unknown-backend", "Accepted=False/Pending@1,ResolvedRefs=False/BackendNotFound@1")
	expect(routes, "unsupported", "Accepted=False/UnsupportedValue@1")
	expect(grpc, "grpc-unknown-backend", "Accepted=False/Pending@1,ResolvedRefs=False/BackendNotFound@1")
	expect(policies, "catalog-callers", "Accepted=True/Accepted@1,ResolvedRefs=False/ServiceAccountNotFound@1")
	if !slices.ContainsFunc(src.Status().Problems, func(p Problem) bool {
		return strings.HasSuffix(p.Object, "/unknown-backend") && strings.Contains(p.Message, "backend")
	}) {
		t.Errorf("the route with an unknown backend is not among the source's problems: %v", src.Status().Problems)
	}
	settled(map[string]int{"good": 1, "unknown-backend": 1, "unsupported": 1})
	if good, err = routes.Get(t.Context(), "good", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if parents, _, _ := unstructured.NestedSlice(good.Object, "status", "parents"); len(parents) != 2 || parents[0].(map[string]any)["controllerName"] != "example.net/gateway" {
		t.Errorf("good's status.parents %v, want the Gateway controller's entry kept beside weft's", parents)
	}

	// The backend comes: the route is admitted.
	createService(t, c, ns, "catalog-v2")
	expect(routes, "unknown-backend", "Accepted=True/Accepted@1,ResolvedRefs=True/ResolvedRefs@1")
	settled(map[string]int{"good": 1, "unknown-backend": 2, "unsupported": 1})

	// A label changes nothing the mesh reads (nor the generation); a
	// spec edit that leaves the route as good has only a new generation
	// to acknowledge.
	if good, err = routes.Get(t.Context(), "good", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	good.SetLabels(map[string]string{"team": "catalog"})
	if good, err = routes.Update(t.Context(), good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rules, _, _ := unstructured.NestedSlice(good.Object, "spec", "rules")
	rules[0].(map[string]any)["matches"] = []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/good/v2"}}}
	if err := unstructured.SetNestedSlice(good.Object, rules, "spec", "rules"); err != nil {
		t.Fatal(err)
	}
	if _, err := routes.Update(t.Context(), good, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(routes, "good", "Accepted=True/Accepted@2,ResolvedRefs=True/ResolvedRefs@2")
	// Two edits of ours, one status write.
	settled(map[string]int{"good": 4, "unknown-backend": 2, "unsupported": 1})
}

func runStatusWriter(t *testing.T, src *Source) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- NewStatusWriter(src).Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("status writer: %v", err)
		}
	})
}

func hasConditions(t *testing.T, res dynamic.ResourceInterface, name, want string) error {
	u, err := res.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if got := conditions(u); got != want {
		return fmt.Errorf("conditions %q, want %q", got, want)
	}
	return nil
}

// TestStatusRetried: a status write RBAC forbids (a ClusterRole without
// httproutes/status) is tried again, and succeeds once it is granted,
// with nothing else changing.
func TestStatusRetried(t *testing.T) {
	env := kubeenv.Shared(t)
	c, dyn := env.Client(t), env.Dynamic(t)
	ns := namespace("retried")
	env.CreateNamespace(t, ns, map[string]string{NamespaceLabel: NamespaceEnabled})
	installCRD(t, env, "gateway.networking.k8s.io_httproutes.yaml", httpRoutes)
	createService(t, c, ns, "catalog")
	routes := dyn.Resource(httpRoutes).Namespace(ns)
	if _, err := routes.Create(t.Context(), httpRoute(ns, "good", "catalog"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := "weft-" + ns
	grant := func(name string, rule rbacv1.PolicyRule) {
		t.Helper()
		role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: []rbacv1.PolicyRule{rule}}
		if _, err := c.RbacV1().ClusterRoles().Create(t.Context(), role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
			Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
		if _, err := c.RbacV1().ClusterRoleBindings().Create(t.Context(), binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = c.RbacV1().ClusterRoleBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
			_ = c.RbacV1().ClusterRoles().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	groups := []string{"", "discovery.k8s.io"}
	for _, gvr := range PolicyResources {
		groups = append(groups, gvr.Group)
	}
	grant(user+"-read", rbacv1.PolicyRule{APIGroups: groups, Resources: []string{"*"}, Verbs: []string{"list", "watch"}})
	cfg := env.UserConfig(t, user)
	userClient, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	userDyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the read role in effect", func() error {
		_, err := userDyn.Resource(httpRoutes).Namespace(ns).List(t.Context(), metav1.ListOptions{})
		return err
	})
	_, src := startSourceAs(t, userClient, userDyn)
	runStatusWriter(t, src)
	time.Sleep(time.Second)
	if err := hasConditions(t, routes, "good", ""); err != nil {
		t.Fatalf("without the right to write it: %v", err)
	}
	grant(user+"-status", rbacv1.PolicyRule{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes/status"}, Verbs: []string{"update"}})
	// Past the writer's first retries (5s, then 10s), since the grant
	// takes effect a moment after it is made.
	eventuallyWithin(t, time.Minute, "the status once granted", func() error {
		return hasConditions(t, routes, "good", "Accepted=True/Accepted@1,ResolvedRefs=True/ResolvedRefs@1")
	})
}

// TestCRDEstablishedIsRead: a route or policy kind whose CRD comes after
// the source started is read within seconds, long before the next
// Rediscover, since the source watches CRDs. Its own API server, so the
// CRD is new to it.
func TestCRDEstablishedIsRead(t *testing.T) {
	env := kubeenv.Start(t)
	dyn := env.Dynamic(t)
	bank := namespace("bank")
	env.CreateNamespace(t, bank, map[string]string{NamespaceLabel: NamespaceEnabled})
	store := model.NewStore()
	src, err := New(Options{Client: env.Client(t), Dynamic: dyn, Store: store, Debounce: 10 * time.Millisecond, Rediscover: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	<-src.Synced()

	gvr := schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"}
	installCRD(t, env, "weft.dev_retrypolicies.yaml", gvr)
	if _, err := dyn.Resource(gvr).Namespace(bank).Create(t.Context(), retryPolicy(bank, 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	key := model.PolicyKey{Kind: model.KindRetryPolicy, Ref: model.Ref{Namespace: bank, Name: "catalog-retries"}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok := store.Snapshot().Policy(key); ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the RetryPolicy is not in the model 15s after its CRD was served; watching %v", src.Status().Resources)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
