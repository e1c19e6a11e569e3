package manifest

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// decodeOnePolicy decodes doc and checks it is exactly one valid object, the
// policy want; it returns what it decoded.
func decodeOnePolicy(t *testing.T, doc string, want model.Policy) model.Policy {
	t.Helper()
	d := Decode("policy.yaml", []byte(doc))
	if err := d.Err(); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(d.Objects) != 1 {
		t.Fatalf("got %d objects, want 1", len(d.Objects))
	}
	o := d.Objects[0]
	if k := want.Key(); o.Key != (Key{Kind: k.Kind, Ref: k.Ref}) {
		t.Errorf("key = %v, want %v", o.Key, k)
	}
	if o.Service != nil || o.Workload != nil {
		t.Errorf("object %s has a service or a workload", o.Key)
	}
	if o.Policy == nil || !o.Policy.EqualPolicy(want) {
		t.Errorf("policy =\n%s\nwant\n%s", toJSON(t, o.Policy), toJSON(t, want))
	}
	return o.Policy
}

// decodeOneInvalid decodes doc and checks it is one invalid object whose
// error says each of want.
func decodeOneInvalid(t *testing.T, doc string, want []string) {
	t.Helper()
	d := Decode("bad.yaml", []byte(doc))
	err := d.Err()
	if err == nil {
		t.Fatal("Decode accepted it")
	}
	if len(d.Invalid) != 1 || len(d.Broken) > 0 {
		t.Errorf("want one invalid object, got %d invalid, %d broken: %v", len(d.Invalid), len(d.Broken), err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}
