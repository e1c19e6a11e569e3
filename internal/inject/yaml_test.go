package inject

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/testutil/golden"
	"sigs.k8s.io/yaml"
)

// testOptions are what the golden files were made with.
func testOptions() Options {
	return Options{
		ProxyImage:   "ghcr.io/weftmesh/weft-proxy:v0.1.0",
		ControlPlane: "weft-control-plane.weft-system.svc:15010",
		TrustDomain:  "cluster.local",
	}
}

// offlineNamespace is what weft inject passes: the user asked for
// injection, so every namespace counts as opted in.
var offlineNamespace = map[string]string{InjectKey: Enabled}

// TestDocumentsGolden injects each testdata/inject/*.yaml and compares the
// output, then the reports, with NAME.golden; an error is compared
// instead when the input must fail. Each output, injected again, must
// come back byte for byte: injection is idempotent.
func TestDocumentsGolden(t *testing.T) {
	inputs, err := filepath.Glob("testdata/inject/*.yaml")
	if err != nil || len(inputs) == 0 {
		t.Fatalf("no inputs: %v", err)
	}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			out, reports, err := Documents(data, offlineNamespace, testOptions())
			var got strings.Builder
			if err != nil {
				fmt.Fprintf(&got, "error: %v\n", err)
			} else {
				got.Write(out)
				got.WriteString("# reports\n")
				for _, r := range reports {
					fmt.Fprintf(&got, "# %s: injected=%v: %s\n", r.Object, r.Injected, r.Reason)
					for _, w := range r.Warnings {
						fmt.Fprintf(&got, "#   warning: %s\n", w)
					}
				}
			}
			golden.Check(t, strings.TrimSuffix(in, ".yaml")+".golden", []byte(got.String()))
			if err != nil {
				return
			}
			again, _, err := Documents(out, offlineNamespace, testOptions())
			if err != nil {
				t.Fatalf("injecting the output again: %v", err)
			}
			if string(again) != string(out) {
				t.Errorf("injecting the output again changed it:\n%s", again)
			}
			// Every output document must still be YAML of an object.
			for i, doc := range strings.Split(string(out), "\n---\n") {
				var v map[string]any
				if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
					t.Errorf("output document %d: %v", i+1, err)
				}
			}
		})
	}
}

func TestDocumentsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			name: "bad annotation names it and the object",
			in:   "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop, annotations: {weft.dev/proxy-log-level: loud}}\nspec: {containers: [{name: a, image: i}]}\n",
			want: `document 1: pod shop/p: weft.dev/proxy-log-level: "loud": want one of debug, info, warn, error`,
		},
		{
			name: "a workload without a template",
			in:   "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n",
			want: "document 1: deployment d: no pod template at spec.template",
		},
		{
			name: "not YAML",
			in:   "kind: Pod\n  name: [\n",
			want: "document 1:",
		},
		{
			name: "second document's error is numbered",
			in:   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {weft.dev/inject: maybe}}\nspec: {containers: [{name: a, image: i}]}\n",
			want: `document 2: pod p: weft.dev/inject: "maybe": pod annotation: want enabled or disabled`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := Documents([]byte(tc.in), offlineNamespace, testOptions())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if out != nil {
				t.Errorf("an error must write nothing, got %q", out)
			}
		})
	}
}

func TestDocumentsAnnotationErrorIsTyped(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata: {name: p, annotations: {weft.dev/skip-outbound-ports: '80,http'}}\nspec: {containers: [{name: a, image: i}]}\n"
	_, _, err := Documents([]byte(in), offlineNamespace, testOptions())
	var ae *AnnotationError
	if !errors.As(err, &ae) || ae.Key != SkipOutboundPortsAnnotation {
		t.Fatalf("got %v, want an *AnnotationError for %s", err, SkipOutboundPortsAnnotation)
	}
}
