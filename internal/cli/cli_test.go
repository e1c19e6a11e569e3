package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/testutil/golden"
)

// startControlPlane serves testdata/mesh.yaml plus the given extra files.
func startControlPlane(t *testing.T, extra map[string]string) *controlplane.ControlPlane {
	t.Helper()
	dir := t.TempDir()
	mesh, err := os.ReadFile("testdata/mesh.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"mesh.yaml": string(mesh)}
	for k, v := range extra {
		files[k] = v
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := controlplane.New(controlplane.Options{ManifestDir: dir, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	select {
	case <-cp.Loaded():
	case <-time.After(10 * time.Second):
		t.Fatal("control plane did not load its manifests")
	}
	return cp
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name+".golden"), []byte(got))
}

func TestGet(t *testing.T) {
	policies, err := os.ReadFile("testdata/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, map[string]string{"policies.yaml": string(policies)})
	for _, tc := range []struct {
		name, resource string
		args           []string
	}{
		{"get-services", "services", nil},
		{"get-workloads", "workloads", nil},
		{"get-policies", "policies", nil},
		{"get-policies-json", "policies", []string{"-o", "json"}},
		{"get-problems", "problems", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"get", tc.resource, "--admin", cp.AdminAddr()}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, tc.name, out)
		})
	}
}

// manifestDir finds the test's temporary manifest directory in a path.
var manifestDir = regexp.MustCompile(`/[^" ]*/(routes\.yaml)`)

func TestGetRoutes(t *testing.T) {
	routes, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, map[string]string{"routes.yaml": string(routes)})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"get-routes", []string{"routes"}},
		{"get-routes-json", []string{"routes", "-o", "json"}},
		// A rejected route is a problem of the file that declares it.
		{"get-route-problems", []string{"problems", "-o", "json"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"get", "--admin", cp.AdminAddr()}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, tc.name, manifestDir.ReplaceAllString(out, "$1"))
		})
	}
}

func TestStatusReportsProblems(t *testing.T) {
	cp := startControlPlane(t, map[string]string{
		"bad.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: bad, namespace: shop}\nspec:\n  ports: [{port: 0}]\n",
	})
	out, err := run(t, "status", "--admin", cp.AdminAddr())
	if err == nil {
		t.Fatalf("status succeeded with a bad manifest:\n%s", out)
	}
	for _, want := range []string{"2 services, 1 workloads", "1 problem(s)", "bad.yaml: service shop/bad: spec.ports[0].port: must be between 1 and 65535, got 0"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		desc string
		args []string
		want string
	}{
		{"bad output", []string{"get", "services", "-o", "yaml"}, `--output: want table or json, got "yaml"`},
		{"unknown resource", []string{"get", "pods", "--admin", "127.0.0.1:1"}, `unknown resource "pods"`},
		{"nothing listening", []string{"status", "--admin", "127.0.0.1:1"}, "is `weft up` or `weft control` running?"},
		{"up needs one source", []string{"up"}, "give exactly one of --demo and -f DIR"},
		{"bad log level", []string{"control", "--log-level", "loud"}, "--log-level"},
		{"bad webhook failure policy", []string{"control", "--webhook-failure-policy", "Maybe"}, `--webhook-failure-policy "Maybe": want Fail or Ignore`},
		{"bad port base", []string{"up", "--demo", "--port-base", "80", "--state-dir", "STATE", "--proxy", "/bin/true"}, "--port-base: want 1024..65000"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			for i, a := range tc.args {
				if a == "STATE" {
					tc.args[i] = t.TempDir()
				}
			}
			out, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error()+out, tc.want) {
				t.Errorf("err = %v, output %q; want %q", err, out, tc.want)
			}
		})
	}
}

func TestLeafProblems(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	leaf := func(issuedAgo, lifetime time.Duration, proxies int) controlplane.Leaf {
		issued := now.Add(-issuedAgo)
		return controlplane.Leaf{SPIFFEID: "spiffe://weft.local/ns/shop/sa/catalog", Issued: issued, NotAfter: issued.Add(lifetime), Proxies: proxies}
	}
	tests := []struct {
		desc string
		leaf controlplane.Leaf
		want string
	}{
		{"fresh", leaf(time.Hour, 24*time.Hour, 1), ""},
		{"past half, renewal still due", leaf(14*time.Hour, 24*time.Hour, 1), ""},
		{"not renewed", leaf(20*time.Hour, 24*time.Hour, 2), "expires in 4h0m0s and was not renewed"},
		{"expired", leaf(25*time.Hour, 24*time.Hour, 1), "expired on"},
		{"no proxy uses it", leaf(25*time.Hour, 24*time.Hour, 0), ""},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			got := strings.Join(leafProblems([]controlplane.Leaf{tc.leaf}, now), "\n")
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Fatalf("leafProblems = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	routes, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	policies, err := os.ReadFile("testdata/policies.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, map[string]string{"routes.yaml": string(routes), "policies.yaml": string(policies)})
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"describe-route", []string{"HTTPRoute", "shop/catalog-canary"}},
		{"describe-split", []string{"trafficsplit", "shop/catalog-split"}},
		{"describe-policy", []string{"RetryPolicy", "shop/catalog-retries"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"describe", "--admin", cp.AdminAddr()}, tc.args...)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, tc.name, out)
		})
	}
	if out, err := run(t, "describe", "--admin", cp.AdminAddr(), "HTTPRoute", "shop/nope"); err == nil || !strings.Contains(err.Error()+out, "no HTTPRoute shop/nope") {
		t.Errorf("describing what does not exist: %v\n%s", err, out)
	}
}

func TestLogFileKeepsStateDirPrivate(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "weft")
	f, err := openLogFile(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	info, err := os.Stat(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("state directory %s has mode %o, want 700: it holds the CA's keys", stateDir, perm)
	}
}
