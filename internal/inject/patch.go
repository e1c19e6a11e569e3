package inject

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Operation is one operation of a JSON Patch (RFC 6902).
type Operation struct {
	Op    string
	Path  string
	Value any
}

// MarshalJSON writes the value of add and replace even when it is null,
// and never for remove.
func (o Operation) MarshalJSON() ([]byte, error) {
	if o.Op == "remove" {
		return json.Marshal(struct {
			Op   string `json:"op"`
			Path string `json:"path"`
		}{o.Op, o.Path})
	}
	return json.Marshal(struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}{o.Op, o.Path, o.Value})
}

// PodPatch is the webhook's half: it reads the pod of an admission
// request, injects it, and returns the JSON Patch from the pod as sent
// to the meshed pod (nil when nothing changes).
func PodPatch(raw []byte, nsLabels map[string]string, o Options) ([]byte, Result, error) {
	var pod corev1.Pod
	if err := json.Unmarshal(raw, &pod); err != nil {
		return nil, Result{}, fmt.Errorf("reading the pod: %w", err)
	}
	out, res, err := Pod(&pod, nsLabels, o)
	if err != nil {
		return nil, Result{}, err
	}
	if !res.Injected {
		return nil, res, nil
	}
	patch, err := Patch("", &pod, out)
	if err != nil {
		return nil, Result{}, err
	}
	return patch, res, nil
}

// Patch returns the JSON Patch that turns the JSON of original into the
// JSON of mutated, each path under prefix (a JSON pointer, "" for the
// root). It is meant for the changes injection makes, and is applied to
// the object as the client sent it, which may hold fields these Go types
// do not know; so it changes only what differs, and where a list grew at
// one end it adds the new items rather than replacing the list. An
// object member is set with "add", which RFC 6902 defines as replacing a
// member that exists, so the patch also applies where the client's
// object lacks a member that Go's encoding of it has.
func Patch(prefix string, original, mutated any) ([]byte, error) {
	a, err := toJSONValue(original)
	if err != nil {
		return nil, fmt.Errorf("encoding the original: %w", err)
	}
	b, err := toJSONValue(mutated)
	if err != nil {
		return nil, fmt.Errorf("encoding the mutated object: %w", err)
	}
	ops := []Operation{}
	diff(prefix, a, b, &ops)
	return json.Marshal(ops)
}

// toJSONValue encodes v and decodes it as generic JSON, numbers kept as
// written.
func toJSONValue(v any) (any, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var out any
	if err := d.Decode(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func diff(path string, a, b any, ops *[]Operation) {
	if reflect.DeepEqual(a, b) {
		return
	}
	switch a := a.(type) {
	case map[string]any:
		if b, ok := b.(map[string]any); ok {
			for _, k := range slices.Sorted(maps.Keys(a)) {
				if _, ok := b[k]; !ok {
					*ops = append(*ops, Operation{Op: "remove", Path: path + "/" + escape(k)})
				}
			}
			for _, k := range slices.Sorted(maps.Keys(b)) {
				if av, ok := a[k]; ok {
					diff(path+"/"+escape(k), av, b[k], ops)
				} else {
					*ops = append(*ops, Operation{Op: "add", Path: path + "/" + escape(k), Value: b[k]})
				}
			}
			return
		}
	case []any:
		if b, ok := b.([]any); ok && len(b) > len(a) {
			n := len(b) - len(a)
			switch {
			case reflect.DeepEqual(a, b[n:]):
				// Prepended: insert each new item at its index, in order.
				for i, v := range b[:n] {
					*ops = append(*ops, Operation{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: v})
				}
				return
			case reflect.DeepEqual(a, b[:len(a)]):
				for _, v := range b[len(a):] {
					*ops = append(*ops, Operation{Op: "add", Path: path + "/-", Value: v})
				}
				return
			}
		}
	}
	// The root has no member to "add" to, and elsewhere "add" replaces.
	op := "add"
	if path == "" {
		op = "replace"
	}
	*ops = append(*ops, Operation{Op: op, Path: path, Value: b})
}

// escape encodes a member name as a JSON pointer token (RFC 6901).
func escape(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
