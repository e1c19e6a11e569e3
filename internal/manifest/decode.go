package manifest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/api/smi"
	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

// DefaultNamespace is the namespace of objects whose metadata names none.
const DefaultNamespace = "default"

// Kinds weft reads, besides the model's policy kinds
// (model.KindAuthorizationPolicy, ...), which manifests name the same.
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

// Object is one decoded, valid manifest object; exactly one of Service,
// Workload and Policy is set, as Kind says. A policy's Kind is its model
// kind (model.KindTrafficTarget, ...).
type Object struct {
	Key      Key
	Service  *model.Service
	Workload *model.Workload
	Policy   model.Policy
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
	key := Key{Kind: h.Kind, Ref: model.Ref{Namespace: namespaceOf(h.Metadata.Namespace), Name: h.Metadata.Name}}
	invalid := func(err error) (Object, *model.ObjectError, error) {
		return Object{Key: key}, &model.ObjectError{Kind: key.Kind, Ref: key.Ref, Source: source, Err: err}, nil
	}
	versions, ok := decoders[h.Kind]
	if !ok {
		return Object{}, nil, fmt.Errorf("%s %s: unsupported kind (weft reads %s)",
			h.APIVersion, h.Kind, strings.Join(slices.Sorted(maps.Keys(decoders)), ", "))
	}
	decode, ok := versions[h.APIVersion]
	if !ok {
		// The object is known, so it is invalid rather than broken: the
		// file's other objects still apply.
		return invalid(&model.FieldError{Field: "apiVersion", Msg: fmt.Sprintf("%q: weft reads %s as %s",
			h.APIVersion, h.Kind, strings.Join(slices.Sorted(maps.Keys(versions)), " or "))})
	}
	obj := Object{Key: key}
	if err := decode(doc, &obj); err != nil {
		return invalid(err)
	}
	return obj, nil, nil
}

// decoders reads each kind weft knows, by apiVersion, into an Object.
var decoders = map[string]map[string]func(doc []byte, into *Object) error{
	KindService: {"v1": decodeAs(ServiceFromV1, func(o *Object, s *model.Service) { o.Service = s })},
	KindWorkload: {
		weftv1alpha1.GroupVersion: decodeAs(WorkloadFromV1alpha1, func(o *Object, w *model.Workload) { o.Workload = w }),
	},
	model.KindAuthorizationPolicy: {weftv1alpha1.GroupVersion: decodePolicy(AuthorizationPolicyFromV1alpha1)},
	model.KindRetryPolicy:         {weftv1alpha1.GroupVersion: decodePolicy(RetryPolicyFromV1alpha1)},
	model.KindFaultPolicy:         {weftv1alpha1.GroupVersion: decodePolicy(FaultPolicyFromV1alpha1)},
	model.KindCircuitBreakerPolicy: {
		weftv1alpha1.GroupVersion: decodePolicy(CircuitBreakerPolicyFromV1alpha1),
	},
	model.KindRateLimitPolicy: {weftv1alpha1.GroupVersion: decodePolicy(RateLimitPolicyFromV1alpha1)},
	model.KindTrafficTarget: {
		smi.AccessV1alpha3: decodePolicy(TrafficTargetFromSMI),
		smi.AccessV1alpha2: decodePolicy(TrafficTargetFromSMI),
	},
	model.KindHTTPRouteGroup: {
		smi.SpecsV1alpha4: decodePolicy(HTTPRouteGroupFromSMI),
		smi.SpecsV1alpha3: decodePolicy(HTTPRouteGroupFromSMI),
	},
	model.KindTCPRoute: {
		smi.SpecsV1alpha4: decodePolicy(TCPRouteFromSMI),
		smi.SpecsV1alpha3: decodePolicy(TCPRouteFromSMI),
	},
	model.KindHTTPRoute: {gwv1.GroupVersion.String(): decodePolicy(HTTPRouteFromV1)},
	model.KindGRPCRoute: {gwv1.GroupVersion.String(): decodePolicy(GRPCRouteFromV1)},
	model.KindTrafficSplit: {
		smi.SplitV1alpha4: decodePolicy(TrafficSplitFromSMI),
		smi.SplitV1alpha3: decodePolicy(TrafficSplitFromSMI),
		smi.SplitV1alpha2: decodePolicy(TrafficSplitFromSMI),
	},
}

// decodeAs decodes a document strictly into the versioned type T, converts
// it to the model with convert and stores the result with set.
func decodeAs[T, M any](convert func(*T) (M, error), set func(*Object, M)) func([]byte, *Object) error {
	return func(doc []byte, into *Object) error {
		var in T
		if err := unmarshalStrict(doc, &in); err != nil {
			return err
		}
		m, err := convert(&in)
		if err != nil {
			return err
		}
		set(into, m)
		return nil
	}
}

func decodePolicy[T any, P model.Policy](convert func(*T) (P, error)) func([]byte, *Object) error {
	return decodeAs(convert, func(o *Object, p P) { o.Policy = p })
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
