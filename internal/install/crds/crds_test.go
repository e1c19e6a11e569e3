package crds

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/api/smi"
	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
)

func TestFilesParseAndValidate(t *testing.T) {
	files, err := Files(Sets...)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[Set][]string{}
	for _, f := range files {
		c, err := Parse(f.Data)
		if err != nil {
			t.Errorf("%s: %v", f.Name, err)
			continue
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		group, plural, _ := strings.Cut(strings.TrimSuffix(f.Name, ".yaml"), "_")
		if want := plural + "." + group; c.Metadata.Name != want {
			t.Errorf("%s holds %s, want %s: files are named <group>_<plural>.yaml", f.Name, c.Metadata.Name, want)
		}
		kinds[f.Set] = append(kinds[f.Set], c.Spec.Names.Kind)
	}
	want := map[Set][]string{
		Weft:       {"AuthorizationPolicy", "CircuitBreakerPolicy", "FaultPolicy", "RateLimitPolicy", "RetryPolicy", "Workload"},
		GatewayAPI: {"GRPCRoute", "HTTPRoute"},
		SMI:        {"HTTPRouteGroup", "TCPRoute", "TrafficSplit", "TrafficTarget"},
	}
	for set, k := range kinds {
		slices.Sort(k)
		if !slices.Equal(k, want[set]) {
			t.Errorf("set %s has %v, want %v", set, k, want[set])
		}
	}
	if only, err := Files(SMI); err != nil || len(only) != 4 {
		t.Errorf("Files(SMI): %d files, %v", len(only), err)
	}
}

// The Gateway API CRDs are copies of the module's at the version weft
// builds with: when go.mod moves, go generate must copy them again.
func TestGatewayAPICopiesMatchTheModule(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/gateway-api").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dir := filepath.Join(strings.TrimSpace(string(out)), "config", "crd", "standard")
	files, err := Files(GatewayAPI)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		want, err := os.ReadFile(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatalf("the module has no %s: %v", f.Name, err)
		}
		if !bytes.Equal(f.Data, want) {
			t.Errorf("%s differs from the module's (%s): run go generate ./internal/install/crds", f.Name, dir)
		}
	}
}

// Each weft schema has exactly the fields of its Go type, with matching
// types, so that neither the API server prunes a field weft reads nor
// accepts one it would refuse as unknown. SMI's are held to api/smi the
// same way, version by version.
func TestSchemasMatchGoTypes(t *testing.T) {
	for _, tc := range []struct {
		crd, version string
		typ          any
		// absent are fields of the Go type this version does not have.
		absent []string
	}{
		{"workloads.weft.dev", "v1alpha1", weftv1alpha1.Workload{}, nil},
		{"authorizationpolicies.weft.dev", "v1alpha1", weftv1alpha1.AuthorizationPolicy{}, nil},
		{"retrypolicies.weft.dev", "v1alpha1", weftv1alpha1.RetryPolicy{}, nil},
		{"faultpolicies.weft.dev", "v1alpha1", weftv1alpha1.FaultPolicy{}, nil},
		{"circuitbreakerpolicies.weft.dev", "v1alpha1", weftv1alpha1.CircuitBreakerPolicy{}, nil},
		{"ratelimitpolicies.weft.dev", "v1alpha1", weftv1alpha1.RateLimitPolicy{}, nil},
		{"traffictargets.access.smi-spec.io", "v1alpha3", smi.TrafficTarget{}, []string{"spec.destination.port"}},
		{"traffictargets.access.smi-spec.io", "v1alpha2", smi.TrafficTarget{}, nil},
		{"httproutegroups.specs.smi-spec.io", "v1alpha4", smi.HTTPRouteGroup{}, nil},
		{"httproutegroups.specs.smi-spec.io", "v1alpha3", smi.HTTPRouteGroup{}, nil},
		{"tcproutes.specs.smi-spec.io", "v1alpha4", smi.TCPRoute{}, nil},
		{"tcproutes.specs.smi-spec.io", "v1alpha3", smi.TCPRoute{}, []string{"spec.matches"}},
		{"trafficsplits.split.smi-spec.io", "v1alpha4", smi.TrafficSplit{}, nil},
		{"trafficsplits.split.smi-spec.io", "v1alpha3", smi.TrafficSplit{}, nil},
		{"trafficsplits.split.smi-spec.io", "v1alpha2", smi.TrafficSplit{}, []string{"spec.matches"}},
	} {
		t.Run(tc.crd+"/"+tc.version, func(t *testing.T) {
			s := schemaOf(t, tc.crd, tc.version)
			spec, ok := s.Properties["spec"]
			if !ok {
				t.Fatal("no spec in the schema")
			}
			st, _ := reflect.TypeOf(tc.typ).FieldByName("Spec")
			compareType(t, "spec", &spec, st.Type, tc.absent)
		})
	}
}

func schemaOf(t *testing.T, name, version string) *Schema {
	t.Helper()
	files, err := Files(Sets...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		c, err := Parse(f.Data)
		if err != nil {
			t.Fatal(err)
		}
		if c.Metadata.Name == name {
			if s := c.SchemaOf(version); s != nil {
				return s
			}
			t.Fatalf("%s has no version %s", name, version)
		}
	}
	t.Fatalf("no CRD %s", name)
	return nil
}

// compareType checks schema s against Go type typ at path.
func compareType(t *testing.T, path string, s *Schema, typ reflect.Type, absent []string) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if s.PreserveUnknown != nil && *s.PreserveUnknown && s.Type == "" {
		return // any JSON: the Go type reads what it may be
	}
	switch typ.Kind() {
	case reflect.Struct:
		if s.Type != "object" {
			t.Errorf("%s: schema type %q, Go struct %s", path, s.Type, typ)
			return
		}
		goFields := map[string]reflect.Type{}
		collectFields(typ, goFields)
		for name, ft := range goFields {
			p := path + "." + name
			ps, ok := s.Properties[name]
			switch {
			case slices.Contains(absent, p):
				if ok {
					t.Errorf("%s: in the schema, but this version has no such field", p)
				}
			case !ok:
				t.Errorf("%s: a field of %s the schema lacks (the API server would prune it)", p, typ)
			default:
				compareType(t, p, &ps, ft, absent)
			}
		}
		for name := range s.Properties {
			if _, ok := goFields[name]; !ok {
				t.Errorf("%s.%s: in the schema but not in %s", path, name, typ)
			}
		}
	case reflect.Slice:
		if typ.Elem().Kind() == reflect.Map && s.Type == "object" {
			// smi.HTTPHeaders: a list of maps in Go, one map in v1alpha4.
			compareType(t, path, s, typ.Elem(), absent)
			return
		}
		if s.Type != "array" || s.Items == nil {
			t.Errorf("%s: schema type %q, Go slice %s", path, s.Type, typ)
			return
		}
		compareType(t, path+"[]", s.Items, typ.Elem(), absent)
	case reflect.Map:
		if s.Type != "object" || s.AdditionalProperties == nil || s.AdditionalProperties.Schema == nil {
			t.Errorf("%s: schema type %q without additionalProperties, Go map %s", path, s.Type, typ)
			return
		}
		compareType(t, path+"{}", s.AdditionalProperties.Schema, typ.Elem(), absent)
	case reflect.String:
		if s.Type != "string" {
			t.Errorf("%s: schema type %q, Go string", path, s.Type)
		}
	case reflect.Bool:
		if s.Type != "boolean" {
			t.Errorf("%s: schema type %q, Go bool", path, s.Type)
		}
	case reflect.Int, reflect.Int32, reflect.Int64:
		if s.Type != "integer" {
			t.Errorf("%s: schema type %q, Go %s", path, s.Type, typ)
		}
	case reflect.Float64:
		if s.Type != "number" {
			t.Errorf("%s: schema type %q, Go float64", path, s.Type)
		}
	default:
		t.Errorf("%s: Go type %s not compared", path, typ)
	}
}

// collectFields maps the JSON names of a struct's fields to their types,
// inlined embedded structs included.
func collectFields(typ reflect.Type, out map[string]reflect.Type) {
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			collectFields(f.Type, out)
			continue
		}
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
}
