package ca_test

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

func TestSignIssuesSVID(t *testing.T) {
	c := newCA(t, nil)
	want := wid(t, "shop", "catalog")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		csr  []byte
	}{
		{"ecdsa P-256", makeCSR(t, csrOpts{uris: []string{want.String()}})},
		{"ecdsa P-384", makeCSR(t, csrOpts{uris: []string{want.String()}, key: p384})},
		{"rsa 2048", makeCSR(t, csrOpts{uris: []string{want.String()}, key: rsaKey})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := time.Now()
			chain, err := c.Sign(tc.csr, want, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 {
				t.Fatalf("chain of %d certificates, want 2", len(chain))
			}
			leaf, err := x509.ParseCertificate(chain[0])
			if err != nil {
				t.Fatal(err)
			}
			inter, err := x509.ParseCertificate(chain[1])
			if err != nil {
				t.Fatal(err)
			}
			if !inter.Equal(c.Intermediate()) {
				t.Error("chain[1] is not the intermediate")
			}
			roots := x509.NewCertPool()
			roots.AddCert(c.ActiveRoot())
			inters := x509.NewCertPool()
			inters.AddCert(inter)
			for _, eku := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{eku}}); err != nil {
					t.Errorf("leaf does not verify for %v: %v", eku, err)
				}
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want.String() {
				t.Errorf("URIs = %v, want exactly %s", leaf.URIs, want)
			}
			if len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 {
				t.Error("leaf has SANs other than the URI")
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("KeyUsage = %v, want DigitalSignature only", leaf.KeyUsage)
			}
			if len(leaf.ExtKeyUsage) != 2 {
				t.Errorf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Error("leaf must carry basic constraints CA:false")
			}
			if d := before.Add(-time.Minute).Sub(leaf.NotBefore); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotBefore = %s, want now-1m", leaf.NotBefore)
			}
			if d := before.Add(time.Hour).Sub(leaf.NotAfter); d < -2*time.Second || d > 2*time.Second {
				t.Errorf("NotAfter = %s, want now+1h", leaf.NotAfter)
			}
			if leaf.SerialNumber.Sign() <= 0 || leaf.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %v", leaf.SerialNumber)
			}
			got, err := identity.Verify([]*x509.Certificate{leaf, inter}, c.Bundle(), td, time.Now())
			if err != nil || got != want {
				t.Errorf("identity.Verify = %v, %v", got, err)
			}
		})
	}
}

func TestSignCapsAtIntermediate(t *testing.T) {
	c := newCA(t, nil)
	want := wid(t, "a", "b")
	chain, err := c.Sign(makeCSR(t, csrOpts{uris: []string{want.String()}}), want, 5*365*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(chain[0])
	if !leaf.NotAfter.Equal(c.Intermediate().NotAfter) {
		t.Errorf("NotAfter %s, want the intermediate's %s", leaf.NotAfter, c.Intermediate().NotAfter)
	}
}

func TestSignRefuses(t *testing.T) {
	c := newCA(t, nil)
	want := wid(t, "shop", "catalog")
	good := makeCSR(t, csrOpts{uris: []string{want.String()}})
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-3] ^= 0xff
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		csr     []byte
		want    string // the ID the caller proved
		errPart string
	}{
		{"another identity", makeCSR(t, csrOpts{uris: []string{"spiffe://mesh.test/ns/shop/sa/admin"}}), want.String(), `asks for "spiffe://mesh.test/ns/shop/sa/admin"`},
		{"another trust domain", makeCSR(t, csrOpts{uris: []string{"spiffe://evil.test/ns/shop/sa/catalog"}}), want.String(), "asks for"},
		{"caller outside trust domain", makeCSR(t, csrOpts{uris: []string{"spiffe://evil.test/ns/a/sa/b"}}), "spiffe://evil.test/ns/a/sa/b", "not in trust domain"},
		{"extra DNS SAN", makeCSR(t, csrOpts{uris: []string{want.String()}, dns: []string{"catalog.shop"}}), want.String(), "DNS SANs"},
		{"extra IP SAN", makeCSR(t, csrOpts{uris: []string{want.String()}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}}), want.String(), "IP SANs"},
		{"extra email SAN", makeCSR(t, csrOpts{uris: []string{want.String()}, emails: []string{"a@b.c"}}), want.String(), "email SANs"},
		{"two URIs", makeCSR(t, csrOpts{uris: []string{want.String(), "spiffe://mesh.test/x"}}), want.String(), "exactly one URI SAN"},
		{"no URI", makeCSR(t, csrOpts{}), want.String(), "exactly one URI SAN"},
		{"bad signature", badSig, want.String(), "bad signature"},
		{"garbage", []byte("not a csr"), want.String(), "does not parse"},
		{"oversize", make([]byte, ca.MaxCSRSize+1), want.String(), "more than 16384"},
		{"small RSA", makeCSR(t, csrOpts{uris: []string{want.String()}, key: small}), want.String(), "too small"},
		{"ed25519", makeCSR(t, csrOpts{uris: []string{want.String()}, key: edKey}), want.String(), "not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := mustID(t, tc.want)
			_, err := c.Sign(tc.csr, id, time.Hour)
			if !errors.Is(err, ca.ErrCSRRefused) {
				t.Fatalf("err = %v, want ErrCSRRefused", err)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("err = %q, want it to mention %q", err, tc.errPart)
			}
		})
	}
	if _, err := c.Sign(good, want, 0); err == nil {
		t.Error("zero ttl accepted")
	}
}

func TestPersistAndReload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	c1, err := ca.LoadOrCreate(dir, td, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := wid(t, "a", "b")
	if _, err := c1.Sign(makeCSR(t, csrOpts{uris: []string{want.String()}}), want, time.Hour); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v, want 0700", st.Mode().Perm())
	}
	for name, perm := range map[string]os.FileMode{
		"root-1.key": 0o600, "intermediate-1.key": 0o600, "token.key": 0o600, "state.json": 0o600, "leaves.log": 0o600,
		"root-1.crt": 0o644, "intermediate-1.crt": 0o644,
	} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if st.Mode().Perm() != perm {
			t.Errorf("%s: mode %v, want %v", name, st.Mode().Perm(), perm)
		}
	}
	tok, err := c1.MintToken(identity.TokenClaims{Namespace: "a", ServiceAccount: "b", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := ca.LoadOrCreate(dir, td, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.ActiveRoot().Equal(c1.ActiveRoot()) || !c2.Intermediate().Equal(c1.Intermediate()) {
		t.Error("reload made a new root or intermediate")
	}
	if c2.BundleVersion() != c1.BundleVersion() {
		t.Errorf("bundle version %d, want %d", c2.BundleVersion(), c1.BundleVersion())
	}
	if _, err := c2.VerifyToken(tok); err != nil {
		t.Errorf("token minted before the restart: %v", err)
	}
	if a := c2.Anchors(); len(a) != 1 || a[0].LiveLeaves != 1 || !a[0].Active {
		t.Errorf("anchors after reload = %+v, want one active root with 1 live leaf", a)
	}
	if _, err := ca.LoadOrCreate(dir, mustTD(t, "other.test"), nil); err == nil {
		t.Error("loading the CA for another trust domain succeeded")
	}
	if s := c2.String(); !strings.Contains(s, "REDACTED") {
		t.Errorf("String() = %q", s)
	}
}

func TestIntermediateRenewedBeforeExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	c, err := ca.LoadOrCreate(dir, td, clock)
	if err != nil {
		t.Fatal(err)
	}
	first := c.Intermediate()
	now = now.Add(300 * 24 * time.Hour) // less than a third of a year left
	want := wid(t, "a", "b")
	chain, err := c.Sign(makeCSR(t, csrOpts{uris: []string{want.String()}}), want, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	second := c.Intermediate()
	if second.Equal(first) {
		t.Fatal("intermediate not renewed")
	}
	if _, err := identity.VerifyRaw(chain, c.Bundle(), td, now); err != nil {
		t.Errorf("leaf under the renewed intermediate: %v", err)
	}
	c2, err := ca.LoadOrCreate(dir, td, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !c2.Intermediate().Equal(second) {
		t.Error("renewed intermediate not persisted")
	}
}

func TestRotationPersisted(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	c, err := ca.LoadOrCreate(dir, td, clock)
	if err != nil {
		t.Fatal(err)
	}
	reload := func() {
		t.Helper()
		c, err = ca.LoadOrCreate(dir, td, clock)
		if err != nil {
			t.Fatal(err)
		}
	}
	want := wid(t, "a", "b")
	sign := func() {
		t.Helper()
		if _, err := c.Sign(makeCSR(t, csrOpts{uris: []string{want.String()}}), want, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	oldRoot := c.ActiveRoot()
	v := c.BundleVersion()
	sign()
	if err := c.ActivateNewRoot(); !errors.Is(err, ca.ErrRotation) {
		t.Errorf("activate without prepare: %v", err)
	}
	if err := c.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	if err := c.PrepareRotation(); !errors.Is(err, ca.ErrRotation) {
		t.Errorf("second prepare: %v", err)
	}
	reload()
	if c.RotationPhase() != "prepared" || len(c.Bundle()) != 2 || !c.ActiveRoot().Equal(oldRoot) || c.BundleVersion() <= v {
		t.Fatalf("after prepare+reload: phase %q, %d roots, version %d", c.RotationPhase(), len(c.Bundle()), c.BundleVersion())
	}
	if err := c.FinishRotation(true); !errors.Is(err, ca.ErrRotation) {
		t.Errorf("finish before activate: %v", err)
	}
	if err := c.ActivateNewRoot(); err != nil {
		t.Fatal(err)
	}
	reload()
	newRoot := c.ActiveRoot()
	if c.RotationPhase() != "activated" || newRoot.Equal(oldRoot) {
		t.Fatalf("after activate+reload: phase %q", c.RotationPhase())
	}
	sign()
	a := c.Anchors()
	if len(a) != 2 || a[0].Active || !a[1].Active || a[0].LiveLeaves != 1 || a[1].LiveLeaves != 1 {
		t.Fatalf("anchors = %+v", a)
	}
	err = c.FinishRotation(false)
	if !errors.Is(err, ca.ErrRotation) || !strings.Contains(err.Error(), "1 live leaves") {
		t.Fatalf("finish with a live old leaf: %v", err)
	}
	now = now.Add(2 * time.Hour) // every leaf expired
	if err := c.FinishRotation(false); err != nil {
		t.Fatal(err)
	}
	reload()
	if b := c.Bundle(); len(b) != 1 || !b[0].Equal(newRoot) || c.RotationPhase() != "" {
		t.Fatalf("after finish+reload: %d roots, phase %q", len(b), c.RotationPhase())
	}
	if _, err := os.Stat(filepath.Join(dir, "root-1.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("old root key still on disk: %v", err)
	}
	// Forced finish of a second rotation with live leaves.
	sign()
	if err := c.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	if err := c.ActivateNewRoot(); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishRotation(true); err != nil {
		t.Fatalf("forced finish: %v", err)
	}
}
