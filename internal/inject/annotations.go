package inject

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// The annotations (and, for InjectKey, the label) a pod uses to opt in or
// out of the mesh and to tune its proxy.
const (
	InjectKey                   = "weft.dev/inject"
	SkipInboundPortsAnnotation  = "weft.dev/skip-inbound-ports"
	SkipOutboundPortsAnnotation = "weft.dev/skip-outbound-ports"
	ProxyCPUAnnotation          = "weft.dev/proxy-cpu"
	ProxyMemoryAnnotation       = "weft.dev/proxy-memory"
	ProxyLogLevelAnnotation     = "weft.dev/proxy-log-level"
)

// The values of InjectKey.
const (
	Enabled  = "enabled"
	Disabled = "disabled"
)

// knownAnnotations are the pod annotations under weft.dev/ this package
// reads; others get a warning, as they are most likely misspelt.
var knownAnnotations = []string{InjectKey, SkipInboundPortsAnnotation, SkipOutboundPortsAnnotation,
	ProxyCPUAnnotation, ProxyMemoryAnnotation, ProxyLogLevelAnnotation}

// LogLevels are the proxy's log levels, as weft-proxy --log-level takes them.
var LogLevels = []string{"debug", "info", "warn", "error"}

// maxSkippedPorts bounds a skip list: each port becomes an iptables match,
// and an annotation is not the place for thousands of them.
const maxSkippedPorts = 64

// AnnotationError is an invalid value of one annotation (or label).
type AnnotationError struct {
	// Key is the annotation, e.g. weft.dev/proxy-cpu.
	Key   string
	Value string
	Msg   string
}

func (e *AnnotationError) Error() string {
	return fmt.Sprintf("%s: %q: %s", e.Key, e.Value, e.Msg)
}

// Tuning is what a pod's annotations ask of its proxy. The zero value
// asks nothing: Options' defaults apply.
type Tuning struct {
	// SkipInboundPorts and SkipOutboundPorts are sorted and without
	// duplicates.
	SkipInboundPorts  []int32
	SkipOutboundPorts []int32
	// CPU and Memory are nil when not set.
	CPU      *resource.Quantity
	Memory   *resource.Quantity
	LogLevel string
}

// ParseTuning reads the tuning annotations of a pod. Every invalid value
// is reported (joined), each as an *AnnotationError; warnings name
// weft.dev/ annotations it does not know.
func ParseTuning(annotations map[string]string) (Tuning, []string, error) {
	var (
		t    Tuning
		errs []error
		err  error
	)
	if v, ok := annotations[SkipInboundPortsAnnotation]; ok {
		if t.SkipInboundPorts, err = parsePorts(SkipInboundPortsAnnotation, v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := annotations[SkipOutboundPortsAnnotation]; ok {
		if t.SkipOutboundPorts, err = parsePorts(SkipOutboundPortsAnnotation, v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := annotations[ProxyCPUAnnotation]; ok {
		if t.CPU, err = parseQuantity(ProxyCPUAnnotation, v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := annotations[ProxyMemoryAnnotation]; ok {
		if t.Memory, err = parseQuantity(ProxyMemoryAnnotation, v); err != nil {
			errs = append(errs, err)
		}
	}
	if v, ok := annotations[ProxyLogLevelAnnotation]; ok {
		if !slices.Contains(LogLevels, v) {
			errs = append(errs, &AnnotationError{Key: ProxyLogLevelAnnotation, Value: v, Msg: "want one of " + strings.Join(LogLevels, ", ")})
		} else {
			t.LogLevel = v
		}
	}
	var warnings []string
	for _, k := range slices.Sorted(maps.Keys(annotations)) {
		if strings.HasPrefix(k, "weft.dev/") && !slices.Contains(knownAnnotations, k) {
			warnings = append(warnings, fmt.Sprintf("annotation %s is not one weft's injector knows (%s); it has no effect", k, strings.Join(knownAnnotations, ", ")))
		}
	}
	if len(errs) > 0 {
		return Tuning{}, warnings, errors.Join(errs...)
	}
	return t, warnings, nil
}

// Annotations renders the tuning back as annotations: ParseTuning of the
// result gives t again.
func (t Tuning) Annotations() map[string]string {
	out := map[string]string{}
	if len(t.SkipInboundPorts) > 0 {
		out[SkipInboundPortsAnnotation] = joinPorts(t.SkipInboundPorts)
	}
	if len(t.SkipOutboundPorts) > 0 {
		out[SkipOutboundPortsAnnotation] = joinPorts(t.SkipOutboundPorts)
	}
	if t.CPU != nil {
		out[ProxyCPUAnnotation] = t.CPU.String()
	}
	if t.Memory != nil {
		out[ProxyMemoryAnnotation] = t.Memory.String()
	}
	if t.LogLevel != "" {
		out[ProxyLogLevelAnnotation] = t.LogLevel
	}
	return out
}

// parsePorts reads "80, 443,8080": ports 1 to 65535, spaces allowed,
// empty items ignored. The result is sorted and without duplicates.
func parsePorts(key, v string) ([]int32, error) {
	var out []int32
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, &AnnotationError{Key: key, Value: v, Msg: fmt.Sprintf("%q is not a port (1 to 65535); want ports separated by commas", f)}
		}
		out = append(out, int32(n))
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > maxSkippedPorts {
		return nil, &AnnotationError{Key: key, Value: v, Msg: fmt.Sprintf("%d ports: at most %d", len(out), maxSkippedPorts)}
	}
	return out, nil
}

func joinPorts(ports []int32) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// parseQuantity reads a Kubernetes quantity above zero.
func parseQuantity(key, v string) (*resource.Quantity, error) {
	q, err := resource.ParseQuantity(strings.TrimSpace(v))
	if err != nil {
		return nil, &AnnotationError{Key: key, Value: v, Msg: "not a quantity, such as 100m or 128Mi"}
	}
	if q.Sign() <= 0 {
		return nil, &AnnotationError{Key: key, Value: v, Msg: "must be more than zero"}
	}
	return &q, nil
}

// Decision is whether a pod is to be meshed, and why.
type Decision struct {
	Inject bool
	Reason string
}

// Decide applies the precedence of the package comment: the pod's own
// weft.dev/inject (annotation or label, which must agree), then its
// namespace's label. nsLabels are the labels of the pod's namespace; nil
// when unknown.
func Decide(annotations, labels, nsLabels map[string]string) (Decision, error) {
	ann, hasAnn := annotations[InjectKey]
	lbl, hasLbl := labels[InjectKey]
	for _, s := range []struct {
		set      bool
		v, where string
	}{{hasAnn, ann, "annotation"}, {hasLbl, lbl, "label"}} {
		if s.set && s.v != Enabled && s.v != Disabled {
			return Decision{}, &AnnotationError{Key: InjectKey, Value: s.v, Msg: fmt.Sprintf("pod %s: want %s or %s", s.where, Enabled, Disabled)}
		}
	}
	if hasAnn && hasLbl && ann != lbl {
		return Decision{}, &AnnotationError{Key: InjectKey, Value: ann,
			Msg: fmt.Sprintf("the pod's annotation says %s but its label says %s; they must agree", ann, lbl)}
	}
	if pod := cmp.Or(ann, lbl); pod != "" {
		return Decision{Inject: pod == Enabled, Reason: "pod has " + InjectKey + "=" + pod}, nil
	}
	if nsLabels[InjectKey] == Enabled {
		return Decision{Inject: true, Reason: "namespace has " + InjectKey + "=" + Enabled}, nil
	}
	return Decision{Reason: "neither the pod nor its namespace has " + InjectKey + "=" + Enabled}, nil
}
