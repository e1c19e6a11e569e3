package crds

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/manifest"
)

// example is one document of testdata/examples.yaml and what is expected
// of it (see the file's header).
type example struct {
	Kind, Name string
	Doc        []byte
	Valid      bool
	// CRDValid is whether the API server takes it: Valid, but for what
	// only the decoder can refuse.
	CRDValid                bool
	CRDError, ManifestError string
}

func readExamples(t *testing.T) []example {
	t.Helper()
	data, err := os.ReadFile("testdata/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []example
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var head struct {
			Kind     string
			Metadata struct {
				Name        string
				Annotations map[string]string
			}
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Fatal(err)
		}
		a := head.Metadata.Annotations
		e := example{
			Kind: head.Kind, Name: head.Metadata.Name, Doc: doc,
			Valid:         a["test.weft.dev/expect"] == "valid",
			CRDError:      a["test.weft.dev/crd-error"],
			ManifestError: a["test.weft.dev/manifest-error"],
		}
		e.CRDValid = e.Valid || a["test.weft.dev/crd"] == "valid"
		if !e.Valid && (e.ManifestError == "" || !e.CRDValid && e.CRDError == "") {
			t.Fatalf("example %s %s: an invalid example names the errors it expects", e.Kind, e.Name)
		}
		out = append(out, e)
	}
}

// TestExamplesAgainstTheDecoder holds the examples' expectations to weft's
// manifest decoder; TestExamplesAgainstTheAPIServer holds the same
// expectations to the API server with these CRDs, so that both refuse the
// same objects, for the same fields.
func TestExamplesAgainstTheDecoder(t *testing.T) {
	examples := readExamples(t)
	if len(examples) < 40 {
		t.Fatalf("only %d examples", len(examples))
	}
	for _, e := range examples {
		t.Run(e.Kind+"/"+e.Name, func(t *testing.T) {
			d := manifest.Decode("examples.yaml", e.Doc)
			err := d.Err()
			if e.Valid {
				if err != nil || len(d.Objects) != 1 {
					t.Fatalf("the decoder refuses a valid example: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), e.ManifestError) {
				t.Fatalf("got %v, want an error containing %q", err, e.ManifestError)
			}
		})
	}
}
