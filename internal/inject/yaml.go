package inject

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Report is what happened to one pod template of a YAML stream.
type Report struct {
	// Object names it: "deployment shop/web", with the path of its
	// template when that is not the object's own ("list: items[2]").
	Object string
	Result
}

// templatePaths are the JSON pointers of the pod templates of each kind
// `weft inject` mutates. A Pod is its own template (metadata and spec).
var templatePaths = map[string]string{
	"Pod":                   "",
	"Deployment":            "/spec/template",
	"StatefulSet":           "/spec/template",
	"DaemonSet":             "/spec/template",
	"ReplicaSet":            "/spec/template",
	"ReplicationController": "/spec/template",
	"Job":                   "/spec/template",
	"CronJob":               "/spec/jobTemplate/spec/template",
}

// maxDocument bounds one YAML document, as the manifest reader does.
const maxDocument = 4 << 20

// Documents injects every pod template of a multi-document YAML (or JSON)
// stream: Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
// ReplicationControllers, Jobs, CronJobs, and those inside a List. An
// object no template of which changes is written back as it came, byte
// for byte; a changed one is patched as the webhook would patch it, so
// fields these Go types do not know survive, and written as YAML. Any
// error fails the whole stream, so that nothing half-injected is applied.
func Documents(data []byte, nsLabels map[string]string, o Options) ([]byte, []Report, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var (
		out     bytes.Buffer
		reports []Report
		n       int
	)
	for i := 1; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(doc) > maxDocument {
			return nil, nil, fmt.Errorf("document %d: larger than %d bytes", i, maxDocument)
		}
		if isBlank(doc) {
			continue
		}
		got, rs, err := document(doc, nsLabels, o)
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", i, err)
		}
		reports = append(reports, rs...)
		if n > 0 {
			out.WriteString("---\n")
		}
		n++
		out.Write(got)
		if !bytes.HasSuffix(got, []byte("\n")) {
			out.WriteByte('\n')
		}
	}
	return out.Bytes(), reports, nil
}

// isBlank reports whether a document holds only comments and blank lines.
func isBlank(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// object is the generic form of one document, numbers kept as written.
type object = map[string]any

func document(doc []byte, nsLabels map[string]string, o Options) ([]byte, []Report, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, nil, err
	}
	var obj object
	if err := decodeJSON(js, &obj); err != nil {
		return nil, nil, fmt.Errorf("not an object: %w", err)
	}
	var (
		ops     []json.RawMessage
		reports []Report
	)
	if err := walk(obj, "", "", nsLabels, o, &ops, &reports); err != nil {
		return nil, nil, err
	}
	if len(ops) == 0 {
		return bytes.TrimLeft(doc, "\n"), reports, nil
	}
	all, err := json.Marshal(ops)
	if err != nil {
		return nil, nil, err
	}
	patch, err := jsonpatch.DecodePatch(all)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding the patch: %w", err)
	}
	patched, err := patch.Apply(js)
	if err != nil {
		return nil, nil, fmt.Errorf("applying the patch: %w", err)
	}
	y, err := yaml.JSONToYAML(patched)
	if err != nil {
		return nil, nil, err
	}
	return y, reports, nil
}

// walk injects obj's templates (or, for a List, its items'), appending
// each patch operation and report. at is obj's JSON pointer in the
// document, where is how reports name it.
func walk(obj object, at, where string, nsLabels map[string]string, o Options, ops *[]json.RawMessage, reports *[]Report) error {
	kind, _ := obj["kind"].(string)
	meta, _ := obj["metadata"].(object)
	name := strings.TrimSpace(strings.ToLower(kind) + " " + qualifiedName(meta))
	if where != "" {
		name = where
	}
	if kind == "List" || strings.HasSuffix(kind, "List") {
		items, _ := obj["items"].([]any)
		for i, item := range items {
			it, ok := item.(object)
			if !ok {
				continue
			}
			ik, _ := it["kind"].(string)
			im, _ := it["metadata"].(object)
			iwhere := fmt.Sprintf("%s: items[%d] (%s)", name, i, strings.TrimSpace(strings.ToLower(ik)+" "+qualifiedName(im)))
			if err := walk(it, at+"/items/"+strconv.Itoa(i), iwhere, nsLabels, o, ops, reports); err != nil {
				return err
			}
		}
		return nil
	}
	path, ok := templatePaths[kind]
	if !ok {
		return nil
	}
	raw, found := lookup(obj, path)
	if !found {
		return fmt.Errorf("%s: no pod template at %s", name, pointerField(path))
	}
	var tmpl corev1.PodTemplateSpec
	if err := remarshal(raw, &tmpl); err != nil {
		return fmt.Errorf("%s: %s: %w", name, pointerField(path), err)
	}
	// A template's namespace is its object's.
	if tmpl.Namespace == "" && meta != nil {
		tmpl.Namespace, _ = meta["namespace"].(string)
	}
	out, res, err := Template(&tmpl, nsLabels, o)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	*reports = append(*reports, Report{Object: name, Result: res})
	if !res.Injected {
		return nil
	}
	p, err := Patch(at+path, &tmpl, out)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	var these []json.RawMessage
	if err := json.Unmarshal(p, &these); err != nil {
		return err
	}
	*ops = append(*ops, these...)
	return nil
}

func qualifiedName(meta object) string {
	name, _ := meta["name"].(string)
	if name == "" {
		name, _ = meta["generateName"].(string)
	}
	if ns, _ := meta["namespace"].(string); ns != "" {
		return ns + "/" + name
	}
	return name
}

// pointerField writes a JSON pointer as users write a field path.
func pointerField(p string) string {
	if p == "" {
		return "the object"
	}
	return strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", ".")
}

// lookup follows a JSON pointer of member names; "" is obj itself.
func lookup(obj object, pointer string) (any, bool) {
	if pointer == "" {
		return obj, true
	}
	var cur any = obj
	for _, tok := range strings.Split(strings.TrimPrefix(pointer, "/"), "/") {
		m, ok := cur.(object)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// remarshal decodes a generic JSON value into a typed one. Fields the
// types do not know (from a newer Kubernetes) are not an error: the patch
// leaves them as they are, and the API server is the judge of them.
func remarshal(v any, into any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, into)
}

func decodeJSON(data []byte, into any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(into)
}
