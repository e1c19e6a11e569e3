package ca_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

type pair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

var serial int64

func mkCert(t *testing.T, cn string, parent *pair, isCA bool, from, to time.Time) *pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
		NotBefore: from, NotAfter: to, BasicConstraintsValid: true, IsCA: isCA,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{c, key}
}

func writePEM(t *testing.T, path string, certs ...*x509.Certificate) {
	t.Helper()
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeKey(t *testing.T, path string, k *ecdsa.PrivateKey) {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadProvided(t *testing.T) {
	now := time.Now()
	root := mkCert(t, "op root", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour*365))
	root2 := mkCert(t, "op root 2", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour*365))
	inter := mkCert(t, "op intermediate", root, true, now.Add(-time.Hour), now.Add(24*time.Hour*30))
	other := mkCert(t, "other root", nil, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	strayInter := mkCert(t, "stray intermediate", other, true, now.Add(-time.Hour), now.Add(24*time.Hour))
	notCA := mkCert(t, "not a CA", root, false, now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := mkCert(t, "expired intermediate", root, true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	future := mkCert(t, "future intermediate", root, true, now.Add(24*time.Hour), now.Add(48*time.Hour))

	for _, tc := range []struct {
		name    string
		crt     []*x509.Certificate
		key     *ecdsa.PrivateKey
		roots   []*x509.Certificate
		skip    string // a file not written
		errPart string // "" means success
	}{
		{name: "good", crt: []*x509.Certificate{inter.cert}, key: inter.key, roots: []*x509.Certificate{root.cert}},
		{name: "good with chain and two roots", crt: []*x509.Certificate{inter.cert, root.cert}, key: inter.key, roots: []*x509.Certificate{root2.cert, root.cert}},
		{name: "key mismatch", crt: []*x509.Certificate{inter.cert}, key: other.key, roots: []*x509.Certificate{root.cert}, errPart: "tls.key does not match"},
		{name: "not a CA", crt: []*x509.Certificate{notCA.cert}, key: notCA.key, roots: []*x509.Certificate{root.cert}, errPart: `"CN=not a CA" is not a CA certificate`},
		{name: "chains to another root", crt: []*x509.Certificate{strayInter.cert}, key: strayInter.key, roots: []*x509.Certificate{root.cert}, errPart: "does not chain to any root in"},
		{name: "expired", crt: []*x509.Certificate{expired.cert}, key: expired.key, roots: []*x509.Certificate{root.cert}, errPart: "is not valid now"},
		{name: "not yet valid", crt: []*x509.Certificate{future.cert}, key: future.key, roots: []*x509.Certificate{root.cert}, errPart: "is not valid now"},
		{name: "missing ca.crt", crt: []*x509.Certificate{inter.cert}, key: inter.key, skip: ca.ProvidedRootFile, errPart: "ca.crt"},
		{name: "missing tls.key", crt: []*x509.Certificate{inter.cert}, roots: []*x509.Certificate{root.cert}, skip: ca.ProvidedKeyFile, errPart: "tls.key"},
		{name: "empty tls.crt", key: inter.key, roots: []*x509.Certificate{root.cert}, errPart: "tls.crt: no PEM CERTIFICATE block"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.skip != ca.ProvidedCertFile {
				writePEM(t, filepath.Join(dir, ca.ProvidedCertFile), tc.crt...)
			}
			if tc.skip != ca.ProvidedKeyFile {
				writeKey(t, filepath.Join(dir, ca.ProvidedKeyFile), tc.key)
			}
			if tc.skip != ca.ProvidedRootFile {
				writePEM(t, filepath.Join(dir, ca.ProvidedRootFile), tc.roots...)
			}
			c, err := ca.LoadProvided(dir, filepath.Join(t.TempDir(), "state"), td, nil)
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := wid(t, "a", "b")
			chain, err := c.Sign(makeCSR(t, csrOpts{uris: []string{want.String()}}), want, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(chain) != 2 {
				t.Errorf("chain of %d, want leaf+intermediate (never the root)", len(chain))
			}
			if _, err := identity.VerifyRaw(chain, c.Bundle(), td, time.Now()); err != nil {
				t.Errorf("leaf does not verify: %v", err)
			}
			if len(c.Bundle()) != len(tc.roots) {
				t.Errorf("bundle of %d roots, want %d", len(c.Bundle()), len(tc.roots))
			}
			var active int
			for _, a := range c.Anchors() {
				if a.Active {
					active++
					if a.LiveLeaves != 1 || a.Subject != "CN=op root" {
						t.Errorf("active anchor %+v", a)
					}
				}
			}
			if active != 1 {
				t.Errorf("%d active anchors", active)
			}
			if err := c.PrepareRotation(); !errors.Is(err, ca.ErrProvided) {
				t.Errorf("PrepareRotation on a provided CA: %v", err)
			}
		})
	}
}
