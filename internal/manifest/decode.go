package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

// DefaultNamespace is the namespace of objects whose metadata names none.
const DefaultNamespace = "default"

// Kinds weft reads.
const (
	KindService  = "Service"
	KindWorkload = "Workload"
)

// Key identifies one object across sources.
type Key struct {
	Kind string
	Ref  model.Ref
}

func (k Key) String() string { return strings.ToLower(k.Kind) + " " + k.Ref.String() }

// Object is one decoded, valid manifest object; exactly one of the
// pointers is set, as Kind says.
type Object struct {
	Key      Key
	Service  *model.Service
	Workload *model.Workload
}

// Decoded is what one file yields.
type Decoded struct {
	Objects []Object
	// Invalid are objects whose identity is known but whose content is not
	// valid: the last good version of each stays in force.
	Invalid []*model.ObjectError
	// Broken are documents that could not be read far enough to know which
	// object they are. While a file has any, none of its objects change.
	Broken []error
}

// Err joins every problem in the file.
func (d *Decoded) Err() error {
	errs := append([]error(nil), d.Broken...)
	for _, e := range d.Invalid {
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// maxDocumentSize bounds one YAML document, so a huge file cannot exhaust
// the control plane's memory.
const maxDocumentSize = 4 << 20

// Decode reads every document of a (multi-document) YAML or JSON stream.
// source names where it came from in errors.
func Decode(source string, data []byte) *Decoded {
	out := &Decoded{}
	reader := utilyaml.NewYAMLReader(bufio.NewReaderSize(bytes.NewReader(data), 64<<10))
	seen := map[Key]bool{}
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		where := fmt.Sprintf("%s: document %d", source, i+1)
		if err != nil {
			out.Broken = append(out.Broken, fmt.Errorf("%s: %w", where, err))
			return out
		}
		if len(doc) > maxDocumentSize {
			out.Broken = append(out.Broken, fmt.Errorf("%s: larger than %d bytes", where, maxDocumentSize))
			continue
		}
		if isEmpty(doc) {
			continue
		}
		obj, invalid, err := decodeDocument(source, doc)
		switch {
		case err != nil:
			out.Broken = append(out.Broken, fmt.Errorf("%s: %w", where, err))
		case seen[obj.Key]:
			out.Broken = append(out.Broken, fmt.Errorf("%s: %s: declared twice in the file", where, obj.Key))
		case invalid != nil:
			seen[obj.Key] = true
			out.Invalid = append(out.Invalid, invalid)
		default:
			seen[obj.Key] = true
			out.Objects = append(out.Objects, obj)
		}
	}
}

func isEmpty(doc []byte) bool {
	for _, line := range bytes.Split(doc, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && !bytes.Equal(line, []byte("---")) {
			return false
		}
	}
	return true
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
}

// decodeDocument returns the object with its key, or an ObjectError when the
// key is known but the object is not valid, or an error when even the key
// cannot be read.
func decodeDocument(source string, doc []byte) (Object, *model.ObjectError, error) {
	var h header
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return Object{}, nil, err
	}
	if h.Kind == "" || h.APIVersion == "" {
		return Object{}, nil, errors.New("apiVersion and kind must be set")
	}
	if h.Metadata.Name == "" {
		return Object{}, nil, fmt.Errorf("%s: metadata.name must be set", h.Kind)
	}
	ns := h.Metadata.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	key := Key{Kind: h.Kind, Ref: model.Ref{Namespace: ns, Name: h.Metadata.Name}}
	invalid := func(err error) (Object, *model.ObjectError, error) {
		return Object{Key: key}, &model.ObjectError{Kind: key.Kind, Ref: key.Ref, Source: source, Err: err}, nil
	}
	switch {
	case h.APIVersion == "v1" && h.Kind == KindService:
		var s corev1.Service
		if err := unmarshalStrict(doc, &s); err != nil {
			return invalid(err)
		}
		svc, err := ServiceFromV1(&s)
		if err != nil {
			return invalid(err)
		}
		return Object{Key: key, Service: svc}, nil, nil
	case h.APIVersion == weftv1alpha1.GroupVersion && h.Kind == KindWorkload:
		var w weftv1alpha1.Workload
		if err := unmarshalStrict(doc, &w); err != nil {
			return invalid(err)
		}
		wl, err := WorkloadFromV1alpha1(&w)
		if err != nil {
			return invalid(err)
		}
		return Object{Key: key, Workload: wl}, nil, nil
	}
	return Object{}, nil, fmt.Errorf("%s %s: unsupported kind (weft reads v1 Service and %s Workload)",
		h.APIVersion, h.Kind, weftv1alpha1.GroupVersion)
}

// unmarshalStrict decodes a document into a typed object, rejecting unknown
// and duplicate fields with their path ("unknown field \"spec.selectorr\"").
func unmarshalStrict(doc []byte, into any) error {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	strictErrs, err := kjson.UnmarshalStrict(js, into)
	if err != nil {
		return err
	}
	return errors.Join(strictErrs...)
}
