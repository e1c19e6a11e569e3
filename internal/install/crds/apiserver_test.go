package crds

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/testutil/kubeenv"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.RunShared(m)) }

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs creates every CRD of the package in the API server, which
// checks what Validate cannot (the CEL rules compile and their cost is
// bounded), and waits until each is served.
func applyCRDs(t *testing.T, dyn dynamic.Interface) {
	t.Helper()
	files, err := Files(Sets...)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, f := range files {
		obj := decode(t, f.Data)
		if _, err := dyn.Resource(crdResource).Create(ctx, obj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("the API server refuses %s: %v", f.Name, err)
		}
	}
	for _, f := range files {
		name := decode(t, f.Data).GetName()
		deadline := time.Now().Add(30 * time.Second)
		for !established(ctx, dyn, name) {
			if time.Now().After(deadline) {
				t.Fatalf("%s is not Established after 30s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func established(ctx context.Context, dyn dynamic.Interface, name string) bool {
	got, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

func decode(t *testing.T, data []byte) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

func TestExamplesAgainstTheAPIServer(t *testing.T) {
	env := kubeenv.Shared(t)
	dyn := env.Dynamic(t)
	applyCRDs(t, dyn)
	const ns = "crd-examples"
	env.CreateNamespace(t, ns, nil)
	for _, e := range readExamples(t) {
		t.Run(e.Kind+"/"+e.Name, func(t *testing.T) {
			obj := decode(t, e.Doc)
			obj.SetNamespace(ns)
			gvr := schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: strings.ToLower(e.Kind) + "s"}
			if strings.HasSuffix(e.Kind, "y") {
				gvr.Resource = strings.ToLower(strings.TrimSuffix(e.Kind, "y")) + "ies"
			}
			_, err := dyn.Resource(gvr).Namespace(ns).Create(t.Context(), obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if e.CRDValid {
				if err != nil {
					t.Fatalf("the API server refuses an example it should take: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), e.CRDError) {
				t.Fatalf("got %v, want a refusal containing %q", err, e.CRDError)
			}
		})
	}
}

// The SMI and Gateway API kinds take what weft's decoder reads: a
// manifest valid for weft is not pruned or refused by their CRDs.
func TestRouteKindsAgainstTheAPIServer(t *testing.T) {
	env := kubeenv.Shared(t)
	dyn := env.Dynamic(t)
	applyCRDs(t, dyn)
	const ns = "crd-routes"
	env.CreateNamespace(t, ns, nil)
	for _, tc := range []struct {
		gvr schema.GroupVersionResource
		doc string
	}{
		{schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"},
			`{apiVersion: split.smi-spec.io/v1alpha4, kind: TrafficSplit, metadata: {name: s}, spec: {service: catalog, backends: [{service: catalog-v1, weight: 90}, {service: catalog-v2, weight: 10}], matches: [{kind: HTTPRouteGroup, name: canary}]}}`},
		{schema.GroupVersionResource{Group: "split.smi-spec.io", Version: "v1alpha2", Resource: "trafficsplits"},
			`{apiVersion: split.smi-spec.io/v1alpha2, kind: TrafficSplit, metadata: {name: s2}, spec: {service: catalog, backends: [{service: catalog-v1, weight: 1}]}}`},
		{schema.GroupVersionResource{Group: "specs.smi-spec.io", Version: "v1alpha4", Resource: "httproutegroups"},
			`{apiVersion: specs.smi-spec.io/v1alpha4, kind: HTTPRouteGroup, metadata: {name: g}, spec: {matches: [{name: api, methods: [GET], pathRegex: "/api/.*", headers: {x-canary: "1"}}]}}`},
		{schema.GroupVersionResource{Group: "specs.smi-spec.io", Version: "v1alpha3", Resource: "httproutegroups"},
			`{apiVersion: specs.smi-spec.io/v1alpha3, kind: HTTPRouteGroup, metadata: {name: g3}, spec: {matches: [{name: api, headers: {x-canary: "1"}}]}}`},
		{schema.GroupVersionResource{Group: "specs.smi-spec.io", Version: "v1alpha4", Resource: "tcproutes"},
			`{apiVersion: specs.smi-spec.io/v1alpha4, kind: TCPRoute, metadata: {name: r}, spec: {matches: {ports: [5432]}}}`},
		{schema.GroupVersionResource{Group: "access.smi-spec.io", Version: "v1alpha3", Resource: "traffictargets"},
			`{apiVersion: access.smi-spec.io/v1alpha3, kind: TrafficTarget, metadata: {name: tt}, spec: {destination: {kind: ServiceAccount, name: catalog}, sources: [{kind: ServiceAccount, name: web}], rules: [{kind: HTTPRouteGroup, name: g, matches: [api]}]}}`},
		{schema.GroupVersionResource{Group: "access.smi-spec.io", Version: "v1alpha2", Resource: "traffictargets"},
			`{apiVersion: access.smi-spec.io/v1alpha2, kind: TrafficTarget, metadata: {name: tt2}, spec: {destination: {kind: ServiceAccount, name: catalog, port: 8080}, sources: [{kind: ServiceAccount, name: web}], rules: [{kind: TCPRoute, name: r}]}}`},
		{schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
			`{apiVersion: gateway.networking.k8s.io/v1, kind: HTTPRoute, metadata: {name: h}, spec: {parentRefs: [{group: "", kind: Service, name: catalog, port: 80}], rules: [{backendRefs: [{name: catalog-v2, port: 80, weight: 10}]}]}}`},
		{schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
			`{apiVersion: gateway.networking.k8s.io/v1, kind: GRPCRoute, metadata: {name: gr}, spec: {parentRefs: [{group: "", kind: Service, name: stock}], rules: [{backendRefs: [{name: stock, port: 50051}]}]}}`},
	} {
		t.Run(fmt.Sprintf("%s/%s", tc.gvr.Resource, tc.gvr.Version), func(t *testing.T) {
			obj := decode(t, []byte(tc.doc))
			obj.SetNamespace(ns)
			got, err := dyn.Resource(tc.gvr).Namespace(ns).Create(t.Context(), obj, metav1.CreateOptions{FieldValidation: "Strict"})
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			// Everything sent is kept (Gateway API's defaults add to it).
			if !containsAll(got.Object["spec"], obj.Object["spec"]) {
				t.Errorf("stored spec %v lacks some of what was sent, %v", got.Object["spec"], obj.Object["spec"])
			}
			// And read again, from storage, in the version written.
			again, err := dyn.Resource(tc.gvr).Namespace(ns).Get(t.Context(), obj.GetName(), metav1.GetOptions{})
			if err != nil || !containsAll(again.Object["spec"], obj.Object["spec"]) {
				t.Errorf("read back: %v, %v", again, err)
			}
		})
	}
}

// containsAll reports whether got holds everything want does.
func containsAll(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !containsAll(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !containsAll(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return fmt.Sprint(got) == fmt.Sprint(want)
}
