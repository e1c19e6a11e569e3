package kube

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

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
	deadline := time.Now().Add(20 * time.Second)
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
	store := model.NewStore()
	src, err := New(Options{Client: env.Client(t), Dynamic: env.Dynamic(t), Store: store, Debounce: 10 * time.Millisecond, Rediscover: 100 * time.Millisecond})
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

// TestServicesAndPods: Services and meshed Pods of a namespace that opts
// in become the model's Services and Workloads, with endpoints only for
// the Pods that are ready; another namespace's stay out.
func TestServicesAndPods(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	shopNS, legacyNS := namespace("shop"), namespace("legacy")
	env.CreateNamespace(t, shopNS, map[string]string{NamespaceLabel: NamespaceEnabled})
	env.CreateNamespace(t, legacyNS, nil)
	for _, ns := range []string{shopNS, legacyNS} {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog"}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "catalog"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		}}
		if _, err := c.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	p0, st0 := pod("catalog-0", "198.18.10.5", true, map[string]string{"app": "catalog"})
	createPod(t, c, shopNS, p0, st0)
	// Not meshed, in a namespace that did not opt in: never read.
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "catalog-0", Labels: map[string]string{"app": "catalog"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
	if _, err := c.CoreV1().Pods(legacyNS).Create(t.Context(), plain, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	store, src := startSource(t, env)
	shop := model.Ref{Namespace: shopNS, Name: "catalog"}
	ep0, ep1 := shopNS+"/catalog-0@198.18.10.5:4143", shopNS+"/catalog-1@198.18.10.6:4143"
	if got, err := endpointIDs(store, shop); err != nil || got != ep0 {
		t.Fatalf("after the first sync: endpoints %q, %v", got, err)
	}
	if _, ok := store.Snapshot().Service(model.Ref{Namespace: legacyNS, Name: "catalog"}); ok {
		t.Error("a Service of a namespace outside the mesh is in the model")
	}
	if st, _ := store.Snapshot().Service(shop); st.Service.ClusterIPs == nil {
		t.Error("the Service's cluster IP did not reach the model")
	}

	// A second Pod that is not ready: its workload is in the model (its
	// proxy needs its config), not an endpoint; once ready, it is.
	p1, st1 := pod("catalog-1", "198.18.10.6", false, map[string]string{"app": "catalog"})
	createPod(t, c, shopNS, p1, st1)
	eventually(t, "catalog-1 in the model, not an endpoint", func() error {
		if _, ok := store.Snapshot().Workload(model.Ref{Namespace: shopNS, Name: "catalog-1"}); !ok {
			return fmt.Errorf("no workload catalog-1")
		}
		if got, _ := endpointIDs(store, shop); got != ep0 {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})
	st1.Conditions[0].Status = corev1.ConditionTrue
	p1.Namespace = shopNS
	setPodStatus(t, c, p1, st1)
	eventually(t, "catalog-1 an endpoint once ready", func() error {
		if got, _ := endpointIDs(store, shop); got != ep0+","+ep1 {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})

	// A Pod deleted leaves the model.
	if err := c.CoreV1().Pods(shopNS).Delete(t.Context(), "catalog-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "catalog-0 gone", func() error {
		if got, _ := endpointIDs(store, shop); got != ep1 {
			return fmt.Errorf("endpoints %q", got)
		}
		return nil
	})
	if p := src.Status().Problems; len(p) != 0 {
		t.Errorf("problems: %v", p)
	}
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
