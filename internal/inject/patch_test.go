package inject

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
)

// applyPatch applies a patch with a JSON Patch library other than ours,
// as the API server does.
func applyPatch(t *testing.T, doc, patch []byte) map[string]any {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding %s: %v", patch, err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("applying %s: %v", patch, err)
	}
	var v map[string]any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func jsonOf(t *testing.T, v any) (raw []byte, generic map[string]any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	return raw, generic
}

func TestPodPatchYieldsTheMutatedPod(t *testing.T) {
	ns := map[string]string{InjectKey: Enabled}
	for _, tc := range []struct {
		name string
		ann  map[string]string
		// bare starts from a pod without volumes or init containers, so
		// the patch adds whole lists rather than items.
		bare bool
	}{
		{name: "pod with init containers and volumes"},
		{name: "bare pod", bare: true},
		{name: "tuned pod", ann: map[string]string{ProxyCPUAnnotation: "1", SkipInboundPortsAnnotation: "1,2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := testPod(tc.ann, nil)
			if !tc.bare {
				pod.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			} else {
				pod.Spec.InitContainers = nil
			}
			raw, _ := jsonOf(t, pod)
			patch, res, err := PodPatch(raw, ns, testOptions())
			if err != nil || !res.Injected {
				t.Fatalf("%+v, %v", res, err)
			}
			mutated, _, err := Pod(pod, ns, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			_, want := jsonOf(t, mutated)
			if got := applyPatch(t, raw, patch); !reflect.DeepEqual(got, want) {
				t.Errorf("the patched pod is not the mutated one\npatch: %s\ngot:  %v\nwant: %v", patch, got, want)
			}
		})
	}
}

// The API server applies the patch to the pod as the client sent it,
// which may have fields weft's Go types do not know and lack some that
// Go's encoding has: the patch must keep the former and not trip on the
// latter.
func TestPodPatchOnTheClientsPod(t *testing.T) {
	raw := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"web-","namespace":"shop"},
		"spec":{"futureField":{"a":1},"containers":[{"name":"app","image":"app:1","futureContainerField":true}]}}`)
	patch, res, err := PodPatch(raw, map[string]string{InjectKey: Enabled}, testOptions())
	if err != nil || !res.Injected {
		t.Fatalf("%+v, %v", res, err)
	}
	got := applyPatch(t, raw, patch)
	spec := got["spec"].(map[string]any)
	if spec["futureField"] == nil {
		t.Error("the patch dropped a field weft does not know")
	}
	if c := spec["containers"].([]any)[0].(map[string]any); c["futureContainerField"] != true {
		t.Error("the patch dropped a container field weft does not know")
	}
	inits := spec["initContainers"].([]any)
	if len(inits) != 2 || inits[1].(map[string]any)["name"] != ProxyContainerName {
		t.Errorf("init containers %v", inits)
	}
	if _, ok := got["status"]; ok {
		t.Error("the patch added a status")
	}
}

func TestPodPatchNothingToDo(t *testing.T) {
	raw, _ := jsonOf(t, testPod(map[string]string{InjectKey: Disabled}, nil))
	patch, res, err := PodPatch(raw, map[string]string{InjectKey: Enabled}, testOptions())
	if err != nil || res.Injected || patch != nil {
		t.Fatalf("got patch %s, %+v, %v; want none", patch, res, err)
	}
	if _, _, err := PodPatch([]byte(`{"spec":`), nil, testOptions()); err == nil {
		t.Error("a broken pod gave no error")
	}
}

func TestPatchDiff(t *testing.T) {
	for _, tc := range []struct {
		name    string
		a, b    string
		wantOps string
	}{
		{name: "equal", a: `{"x":[1,2]}`, b: `{"x":[1,2]}`, wantOps: `[]`},
		{name: "member added and removed", a: `{"x":1,"y":2}`, b: `{"x":1,"z":null}`, wantOps: `[{"op":"remove","path":"/y"},{"op":"add","path":"/z","value":null}]`},
		{name: "prepended", a: `{"l":[3]}`, b: `{"l":[1,2,3]}`, wantOps: `[{"op":"add","path":"/l/0","value":1},{"op":"add","path":"/l/1","value":2}]`},
		{name: "appended", a: `{"l":[1]}`, b: `{"l":[1,2]}`, wantOps: `[{"op":"add","path":"/l/-","value":2}]`},
		{name: "reordered list replaced", a: `{"l":[1,2]}`, b: `{"l":[2,1]}`, wantOps: `[{"op":"add","path":"/l","value":[2,1]}]`},
		{name: "escaped names", a: `{"m":{}}`, b: `{"m":{"a/b~c":"v"}}`, wantOps: `[{"op":"add","path":"/m/a~1b~0c","value":"v"}]`},
		{name: "type change", a: `{"m":{"k":1}}`, b: `{"m":"s"}`, wantOps: `[{"op":"add","path":"/m","value":"s"}]`},
		{name: "root replaced", a: `[1]`, b: `{"k":1}`, wantOps: `[{"op":"replace","path":"","value":{"k":1}}]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var a, b any
			if err := json.Unmarshal([]byte(tc.a), &a); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.b), &b); err != nil {
				t.Fatal(err)
			}
			patch, err := Patch("", a, b)
			if err != nil {
				t.Fatal(err)
			}
			if string(patch) != tc.wantOps {
				t.Errorf("patch %s, want %s", patch, tc.wantOps)
			}
			// And it does what it says, per the other library.
			if _, isObj := a.(map[string]any); isObj {
				p, err := jsonpatch.DecodePatch(patch)
				if err != nil {
					t.Fatal(err)
				}
				out, err := p.Apply([]byte(tc.a))
				if err != nil {
					t.Fatal(err)
				}
				var got any
				if err := json.Unmarshal(out, &got); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, b) {
					t.Errorf("applied: %s, want %s", out, tc.b)
				}
			}
		})
	}
}
