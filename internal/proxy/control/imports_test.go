package control

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImports guards what the proxy links: the control-plane halves of the
// API and anything Kubernetes stay out of it.
func TestImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/weftmesh/weft/internal/discovery",
		"github.com/weftmesh/weft/internal/registry",
		"github.com/weftmesh/weft/internal/source",
		"github.com/weftmesh/weft/internal/manifest",
		"github.com/weftmesh/weft/internal/controlplane",
		"k8s.io/",
		"sigs.k8s.io/",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("the proxy's control client depends on %s", dep)
			}
		}
	}
}
