package install

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/install/crds"
	"github.com/weftmesh/weft/internal/testutil/golden"
)

// testNow is when the test certificates are made and checked.
var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// testCert makes a webhook certificate for the namespace's Service.
func testCert(t *testing.T, ns string) *CertBundle {
	t.Helper()
	b, err := GenerateCertBundle([]string{ServiceHost(ns)}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrub replaces the certificate's encodings, which differ at every run,
// with placeholders.
func scrub(out []byte, b *CertBundle) []byte {
	for name, pem := range map[string][]byte{"CA": b.CA, "CERT": b.Cert, "KEY": b.Key} {
		out = bytes.ReplaceAll(out, []byte(base64.StdEncoding.EncodeToString(pem)), []byte("<"+name+">"))
	}
	return out
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden.Check(t, filepath.Join("testdata", name+".golden"), got)
}

// TestRenderGolden compares installations, but for their CRDs (the
// embedded files, checked below), with golden files.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{name: "install-default", opts: Options{}},
		{name: "install-tuned", opts: Options{Namespace: "mesh", Replicas: 3, FailurePolicy: "Ignore", TrustDomain: "example.org", ImagePullPolicy: "IfNotPresent", LogLevel: "debug"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			ns := o.Namespace
			if ns == "" {
				ns = DefaultNamespace
			}
			o.Image, o.ProxyImage = "ghcr.io/weftmesh/weft:v0.1.0", "ghcr.io/weftmesh/weft-proxy:v0.1.0"
			o.CRDs = []crds.Set{}
			o.Cert, o.Now = testCert(t, ns), func() time.Time { return testNow }
			objs, err := Render(o)
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tc.name, scrub(YAML(objs), o.Cert))
		})
	}
}

func TestRenderCRDs(t *testing.T) {
	objs, err := Render(Options{Image: "i", ProxyImage: "p", CRDs: []crds.Set{crds.SMI, crds.Weft}})
	if err != nil {
		t.Fatal(err)
	}
	files, err := crds.Files(crds.Weft, crds.SMI)
	if err != nil {
		t.Fatal(err)
	}
	var got []Object
	for _, o := range objs {
		if o.Kind == "CustomResourceDefinition" {
			got = append(got, o)
		}
	}
	if len(got) != len(files) {
		t.Fatalf("%d CRDs rendered, want %d", len(got), len(files))
	}
	for i, f := range files {
		if !bytes.Equal(got[i].YAML, f.Data) {
			t.Errorf("CRD %d (%s) is not the embedded %s", i, got[i].Name, f.Name)
		}
	}
	// Applied after the namespace, before anything that may use them.
	if objs[0].Kind != "Namespace" || objs[1].Kind != "CustomResourceDefinition" {
		t.Errorf("apply order starts %s, %s", objs[0].Kind, objs[1].Kind)
	}
	if last := objs[len(objs)-1]; last.Kind != "MutatingWebhookConfiguration" {
		t.Errorf("the webhook must come last, after what serves it; last is %s", last)
	}
}

func TestRenderMakesAValidCertificate(t *testing.T) {
	objs, err := Render(Options{Namespace: "mesh", Image: "i", ProxyImage: "p", CRDs: []crds.Set{}})
	if err != nil {
		t.Fatal(err)
	}
	// Render validated it; it must also be one the API server can use a
	// year from now.
	if err := Validate(objs, time.Now().Add(365*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := Validate(objs, time.Now().Add(3*365*24*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("a certificate three years on: got %v, want it expired", err)
	}
}

func TestRenderRefusesBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no image", Options{ProxyImage: "p"}, "image"},
		{"no proxy image", Options{Image: "i"}, "proxy image"},
		{"bad namespace", Options{Image: "i", ProxyImage: "p", Namespace: "Weft_System"}, "namespace"},
		{"bad failure policy", Options{Image: "i", ProxyImage: "p", FailurePolicy: "Retry"}, "failure policy"},
		{"bad CRD set", Options{Image: "i", ProxyImage: "p", CRDs: []crds.Set{"istio"}}, "CRD set"},
		{"bad pull policy", Options{Image: "i", ProxyImage: "p", ImagePullPolicy: "Sometimes"}, "image pull policy"},
		{"bad log level", Options{Image: "i", ProxyImage: "p", LogLevel: "loud"}, "log level"},
		{"certificate for another name", Options{Image: "i", ProxyImage: "p", Cert: mustCert(t, "other.weft-system.svc")}, "certificate is valid for other.weft-system.svc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Render(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func mustCert(t *testing.T, name string) *CertBundle {
	b, err := GenerateCertBundle([]string{name}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestValidateFindsBrokenInstallations breaks one thing at a time in a
// rendered installation.
func TestValidateFindsBrokenInstallations(t *testing.T) {
	cert := testCert(t, DefaultNamespace)
	render := func() []Object {
		objs, err := Render(Options{Image: "i", ProxyImage: "p", CRDs: []crds.Set{crds.SMI}, Cert: cert, Now: func() time.Time { return testNow }})
		if err != nil {
			t.Fatal(err)
		}
		return objs
	}
	edit := func(objs []Object, kind, old, new string) []Object {
		for i, o := range objs {
			if o.Kind == kind && bytes.Contains(o.YAML, []byte(old)) {
				objs[i].YAML = bytes.Replace(o.YAML, []byte(old), []byte(new), 1)
				return objs
			}
		}
		t.Fatalf("no %s with %q", kind, old)
		return nil
	}
	drop := func(objs []Object, kind string) []Object {
		return slices.DeleteFunc(objs, func(o Object) bool { return o.Kind == kind })
	}
	for _, tc := range []struct {
		name    string
		breakIt func([]Object) []Object
		want    string
	}{
		{"webhook calls another Service", func(o []Object) []Object {
			return edit(o, "MutatingWebhookConfiguration", "      name: weft-control-plane", "      name: weft")
		}, "Service weft-system/weft is not in the installation"},
		{"webhook calls a port the Service lacks", func(o []Object) []Object {
			return edit(o, "MutatingWebhookConfiguration", "port: 443", "port: 8443")
		}, "serves no port 8443"},
		{"binding to a missing account", func(o []Object) []Object {
			return edit(o, "ClusterRoleBinding", "- kind: ServiceAccount\n  name: weft-control-plane", "- kind: ServiceAccount\n  name: weft")
		}, "subject ServiceAccount weft-system/weft is not in the installation"},
		{"binding to a missing role", func(o []Object) []Object {
			return edit(o, "RoleBinding", "  kind: Role\n  name: weft-control-plane", "  kind: Role\n  name: weft")
		}, "roleRef Role weft"},
		{"no service account", func(o []Object) []Object { return drop(o, "ServiceAccount") }, "serviceAccountName weft-control-plane is not in the installation"},
		{"no CA secret", func(o []Object) []Object {
			return slices.DeleteFunc(o, func(o Object) bool { return o.Name == CASecret })
		}, "grants secrets weft-ca"},
		{"wildcard verb", func(o []Object) []Object { return edit(o, "ClusterRole", "  - list\n", "  - '*'\n") }, "wildcard"},
		{"delete verb", func(o []Object) []Object { return edit(o, "ClusterRole", "  - list\n", "  - delete\n") }, "never needs delete"},
		{"Service selects nothing", func(o []Object) []Object {
			return edit(o, "Service", "app.kubernetes.io/name: weft-control-plane", "app.kubernetes.io/name: weft")
		}, "selects no pod template"},
		{"unknown field", func(o []Object) []Object { return edit(o, "Deployment", "replicas: 2", "replica: 2") }, "unknown field"},
		{"YAML names another object", func(o []Object) []Object { return edit(o, "Secret", "name: weft-ca", "name: weft-root") }, "its YAML names weft-system/weft-root"},
		{"bad name", func(o []Object) []Object {
			o = edit(o, "Secret", "name: weft-ca", "name: Weft_CA")
			for i := range o {
				if o[i].Kind == "Secret" && o[i].Name == CASecret {
					o[i].Name = "Weft_CA"
				}
			}
			return o
		}, "metadata.name: a lowercase RFC 1123 subdomain"},
		{"caBundle of another CA", func(o []Object) []Object {
			other := mustCert(t, ServiceHost(DefaultNamespace))
			return edit(o, "MutatingWebhookConfiguration", base64.StdEncoding.EncodeToString(cert.CA), base64.StdEncoding.EncodeToString(other.CA))
		}, "certificate signed by unknown authority"},
		{"broken CRD", func(o []Object) []Object {
			return edit(o, "CustomResourceDefinition", "storage: true", "storage: false")
		}, "0 storage versions"},
		{"an object twice", func(o []Object) []Object { return append(o, o[len(o)-1]) }, "rendered twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.breakIt(render()), testNow)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestUninstall(t *testing.T) {
	objs, err := Uninstall(UninstallOptions{Namespace: "mesh"})
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "uninstall", YAML(objs))
	// Every object of an installation, weft's CRDs but no others, in
	// the reverse order.
	inst, err := Render(Options{Namespace: "mesh", Image: "i", ProxyImage: "p", CRDs: []crds.Set{crds.Weft}})
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != len(inst) {
		t.Fatalf("%d objects to delete, %d installed", len(objs), len(inst))
	}
	for i, o := range objs {
		in := inst[len(inst)-1-i]
		if o.Kind != in.Kind || o.Name != in.Name || o.Namespace != in.Namespace || o.APIVersion != in.APIVersion {
			t.Errorf("object %d to delete is %s, want %s", i, o, in)
		}
	}
	all, err := Uninstall(UninstallOptions{CRDs: crds.Sets})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(objs)+6 {
		t.Errorf("with every CRD set, %d objects; want %d", len(all), len(objs)+6)
	}
}

func TestCertBundle(t *testing.T) {
	dir := t.TempDir()
	b := testCert(t, "mesh")
	for name, data := range map[string][]byte{"ca.crt": b.CA, "tls.crt": b.Cert, "tls.key": b.Key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	loaded, err := LoadCertBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := loaded.Verify(ServiceHost("mesh"), testNow); err != nil {
		t.Fatal(err)
	}
	other := testCert(t, "mesh")
	for _, tc := range []struct {
		name string
		b    *CertBundle
		host string
		at   time.Time
		want string
	}{
		{"another name", b, ServiceHost("weft-system"), testNow, "valid for"},
		{"before it starts", b, ServiceHost("mesh"), testNow.Add(-time.Hour), "expired or is not yet valid"},
		{"another key", &CertBundle{CA: b.CA, Cert: b.Cert, Key: other.Key}, ServiceHost("mesh"), testNow, "private key does not match"},
		{"another CA", &CertBundle{CA: other.CA, Cert: b.Cert, Key: b.Key}, ServiceHost("mesh"), testNow, "unknown authority"},
		{"no CA", &CertBundle{Cert: b.Cert, Key: b.Key}, ServiceHost("mesh"), testNow, "no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.b.Verify(tc.host, tc.at); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := LoadCertBundle(t.TempDir()); err == nil {
		t.Error("an empty directory gave a bundle")
	}
}

func TestInjectOptionsDialTheService(t *testing.T) {
	o := InjectOptions(Options{Namespace: "mesh", ProxyImage: "p", TrustDomain: "example.org"})
	if o.ControlPlane != "weft-control-plane.mesh.svc:15010" || o.TrustDomain != "example.org" || o.ProxyImage != "p" {
		t.Errorf("inject options %+v", o)
	}
	args := ControlPlaneArgs(Options{Namespace: "mesh", ProxyImage: "p"})
	if !slices.Contains(args, "--proxy-control-plane="+o.ControlPlane) || !slices.Contains(args, "--proxy-image=p") {
		t.Errorf("the control plane would inject with other settings than weft inject: %q", args)
	}
}
