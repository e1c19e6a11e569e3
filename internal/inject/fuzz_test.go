package inject

import (
	"errors"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

// FuzzParseTuning feeds the annotation parser what a pod's author may
// write (the webhook runs it on every pod of a meshed namespace). It must
// not panic; what it accepts must render back to annotations that parse
// to the same tuning; and every error must be an *AnnotationError naming
// an annotation it was given. The seeds are in testdata/fuzz.
func FuzzParseTuning(f *testing.F) {
	f.Add("80,443", "", "100m", "64Mi", "debug", "")
	f.Fuzz(func(t *testing.T, skipIn, skipOut, cpu, memory, level, inject string) {
		ann := map[string]string{}
		for k, v := range map[string]string{
			SkipInboundPortsAnnotation:  skipIn,
			SkipOutboundPortsAnnotation: skipOut,
			ProxyCPUAnnotation:          cpu,
			ProxyMemoryAnnotation:       memory,
			ProxyLogLevelAnnotation:     level,
			InjectKey:                   inject,
		} {
			// An empty value stands for an annotation not given, so that
			// the fuzzer explores both.
			if v != "" {
				ann[k] = v
			}
		}
		if _, err := Decide(ann, nil, nil); err != nil {
			checkAnnotationError(t, err, ann)
		}
		tuning, _, err := ParseTuning(ann)
		if err != nil {
			checkAnnotationError(t, err, ann)
			return
		}
		again, warnings, err := ParseTuning(tuning.Annotations())
		if err != nil || len(warnings) > 0 {
			t.Fatalf("the rendered tuning %v does not parse: %v %v", tuning.Annotations(), err, warnings)
		}
		if !sameTuning(tuning, again) {
			t.Fatalf("round trip: %+v became %+v", tuning, again)
		}
		for _, ports := range [][]int32{tuning.SkipInboundPorts, tuning.SkipOutboundPorts} {
			if !slices.IsSorted(ports) || len(slices.Compact(slices.Clone(ports))) != len(ports) {
				t.Fatalf("ports %v not sorted and unique", ports)
			}
			for _, p := range ports {
				if p < 1 || p > 65535 {
					t.Fatalf("port %d accepted", p)
				}
			}
		}
		if tuning.CPU != nil && tuning.CPU.Sign() <= 0 || tuning.Memory != nil && tuning.Memory.Sign() <= 0 {
			t.Fatalf("a quantity of zero or less accepted: %+v", tuning)
		}
	})
}

func checkAnnotationError(t *testing.T, err error, ann map[string]string) {
	t.Helper()
	for _, e := range unjoin(err) {
		var ae *AnnotationError
		if !errors.As(e, &ae) {
			t.Fatalf("%v is not an *AnnotationError", e)
		}
		if v, ok := ann[ae.Key]; !ok || v != ae.Value {
			t.Fatalf("%v names %s=%q, which was not given", e, ae.Key, ae.Value)
		}
	}
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func sameTuning(a, b Tuning) bool {
	qEqual := func(x, y *resource.Quantity) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.Cmp(*y) == 0
	}
	return slices.Equal(a.SkipInboundPorts, b.SkipInboundPorts) && slices.Equal(a.SkipOutboundPorts, b.SkipOutboundPorts) &&
		qEqual(a.CPU, b.CPU) && qEqual(a.Memory, b.Memory) && a.LogLevel == b.LogLevel
}
