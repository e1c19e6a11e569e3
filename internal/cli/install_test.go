package cli

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/install"
)

var installNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// runInstall runs `weft install` with a fixed clock and certificate, and
// returns its output with the certificate's encodings replaced.
func runInstall(t *testing.T, ns string, args ...string) (string, error) {
	t.Helper()
	cert, err := install.GenerateCertBundle([]string{install.ServiceHost(ns)}, installNow)
	if err != nil {
		t.Fatal(err)
	}
	cmd := installCommand(func() time.Time { return installNow }, cert)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err = cmd.Execute()
	got := out.String()
	for name, pem := range map[string][]byte{"CA": cert.CA, "CERT": cert.Cert, "KEY": cert.Key} {
		got = strings.ReplaceAll(got, base64.StdEncoding.EncodeToString(pem), "<"+name+">")
	}
	return got, err
}

func TestInstallCommand(t *testing.T) {
	for _, tc := range []struct {
		name, ns string
		args     []string
	}{
		{"install-dry-run", "weft-system", []string{"--dry-run"}},
		{"install-dry-run-some-crds", "mesh", []string{"--dry-run", "-n", "mesh", "--crds", "weft,smi"}},
		{"install-no-crds", "mesh", []string{"--crds=", "-n", "mesh", "--replicas", "3", "--failure-policy", "Ignore",
			"--image", "registry.example/weft:v1", "--proxy-image", "registry.example/weft-proxy:v1", "--trust-domain", "example.org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := runInstall(t, tc.ns, tc.args...)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			checkGolden(t, tc.name, out)
		})
	}
}

func TestInstallCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--replicas", "0"}, "--replicas 0: want at least 1"},
		{[]string{"--crds", "weft,istio"}, `--crds "istio"`},
		{[]string{"--failure-policy", "Sometimes"}, "failure policy"},
		{[]string{"--webhook-cert-dir", "/nonexistent"}, "--webhook-cert-dir"},
		{[]string{"-n", "Weft"}, "namespace"},
		{[]string{"--image", ""}, "image"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := runInstall(t, "weft-system", tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v (%s), want an error containing %q", err, out, tc.want)
			}
		})
	}
}

// The operator's own certificate is used as it is, and checked against
// the Service's name.
func TestInstallWithTheOperatorsCertificate(t *testing.T) {
	dir := t.TempDir()
	cert, err := install.GenerateCertBundle([]string{install.ServiceHost("mesh")}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"ca.crt": cert.CA, "tls.crt": cert.Cert, "tls.key": cert.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "install", "--crds=", "-n", "mesh", "--webhook-cert-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, base64.StdEncoding.EncodeToString(cert.Key)) || !strings.Contains(out, "caBundle: "+base64.StdEncoding.EncodeToString(cert.CA)) {
		t.Error("the output does not carry the operator's certificate")
	}
	if _, err := run(t, "install", "--crds=", "-n", "other", "--webhook-cert-dir", dir); err == nil || !strings.Contains(err.Error(), "weft-control-plane.other.svc") {
		t.Errorf("a certificate for another namespace's Service: got %v", err)
	}
}

func TestUninstallCommand(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"uninstall", nil},
		{"uninstall-keep-crds", []string{"--crds=", "-n", "mesh"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := run(t, append([]string{"uninstall"}, tc.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, out)
		})
	}
	if _, err := run(t, "uninstall", "--crds", "weft,calico"); err == nil || !strings.Contains(err.Error(), "--crds") {
		t.Errorf("a bad CRD set: got %v", err)
	}
}

func TestControlPlaneArgsAreWeftControls(t *testing.T) {
	root := NewRootCommand()
	control, _, err := root.Find([]string{"control"})
	if err != nil {
		t.Fatal(err)
	}
	args := install.ControlPlaneArgs(install.Options{ProxyImage: "p"})
	if args[0] != "control" {
		t.Fatalf("args %q do not run weft control", args)
	}
	for _, arg := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if control.Flags().Lookup(name) == nil && root.PersistentFlags().Lookup(name) == nil {
			t.Errorf("weft control has no flag --%s, which the installation runs it with", name)
		}
	}
}

// TestControlKubernetesFlags: Kubernetes mode's flags are refused without
// it, naming the flag, before anything starts.
func TestControlKubernetesFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--namespace=weft-system"}, "--namespace needs --kubernetes"},
		{[]string{"--ca-secret=weft-ca"}, "--ca-secret needs --kubernetes"},
		{[]string{"--leader-election-lease=weft-control-plane"}, "--leader-election-lease needs --kubernetes"},
		{[]string{"--kubeconfig=/nowhere"}, "--kubeconfig needs --kubernetes"},
		{[]string{"--kubernetes", "--kubeconfig=" + filepath.Join(t.TempDir(), "none"), "--ca-secret=weft-ca", "--ca-dir=/etc/weft/ca"}, "--ca-secret and --ca-dir"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, append([]string{"control", "--state-dir", t.TempDir(), "--grpc-addr=127.0.0.1:0", "--admin-addr=127.0.0.1:0"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v (%s), want an error saying %q", err, out, tc.want)
			}
		})
	}
}

func TestInjectCommand(t *testing.T) {
	in := "../inject/testdata/inject/deployment.yaml"
	out, err := run(t, "inject", "-f", in, "--proxy-image", "registry.example/weft-proxy:v1", "--control-plane-namespace", "mesh", "--trust-domain", "example.org", "--ipv6")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	checkGolden(t, "inject-deployment", out)

	// Standard input, and a file, in one run.
	cmd := NewRootCommand()
	var stdout, stderr bytes.Buffer
	cmd.SetIn(strings.NewReader("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: shop}\nspec: {containers: [{name: a, image: i}]}\n"))
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"inject", "-f", "-", "-f", "../inject/testdata/inject/pod-opt-out.yaml"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(stdout.String(), "\nkind: Pod\n"); n != 3 {
		t.Errorf("%d pods written, want 3:\n%s", n, stdout.String())
	}
	for _, want := range []string{"-: pod shop/p injected", "pod-opt-out.yaml: pod shop/debug unchanged: pod has weft.dev/inject=disabled"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestInjectCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"inject"}, "-f is required"},
		{[]string{"inject", "-f", "/nonexistent.yaml"}, "-f"},
		{[]string{"inject", "-f", "../inject/testdata/inject/bad-annotation.yaml"}, `weft.dev/proxy-cpu: "lots"`},
		{[]string{"inject", "-f", "../inject/testdata/inject/job.yaml", "--control-plane", "nohost"}, "control plane"},
		{[]string{"inject", "-f", "../inject/testdata/inject/job.yaml", "--image-pull-policy", "Often"}, "image pull policy"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, err := run(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(out, "kind:") {
				t.Errorf("an error must write no YAML:\n%s", out)
			}
		})
	}
}
