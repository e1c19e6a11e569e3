package ca_test

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/identity"
)

// FuzzSign feeds arbitrary bytes to Sign as a CSR: it must never panic, and
// whatever it signs must be for exactly the identity asked.
func FuzzSign(f *testing.F) {
	c := newCA(f, nil)
	want := wid(f, "shop", "catalog")
	f.Add(makeCSR(f, csrOpts{uris: []string{want.String()}}))
	f.Add(makeCSR(f, csrOpts{uris: []string{"spiffe://mesh.test/ns/shop/sa/admin"}}))
	f.Add(makeCSR(f, csrOpts{uris: []string{want.String()}, dns: []string{"x"}}))
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, csr []byte) {
		chain, err := c.Sign(csr, want, time.Hour)
		if err != nil {
			return
		}
		leaf, err := x509.ParseCertificate(chain[0])
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != want.String() || len(leaf.DNSNames) != 0 || leaf.IsCA {
			t.Fatalf("issued %v for %s", leaf.URIs, want)
		}
	})
}

// FuzzVerifyToken: arbitrary strings never panic, never verify unless they
// were minted, and errors never echo the input.
func FuzzVerifyToken(f *testing.F) {
	c := newCA(f, nil)
	tok, err := c.MintToken(identity.TokenClaims{Namespace: "shop", ServiceAccount: "catalog", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(tok)
	f.Add(tok[:len(tok)-1] + "A")
	f.Add("weft1..")
	f.Add("weft1.e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		_, uerr := identity.ParseTokenUnverified(s)
		cl, err := c.VerifyToken(s)
		if err == nil {
			if uerr != nil {
				t.Fatalf("verified but does not parse: %v", uerr)
			}
			if s != tok {
				t.Fatalf("verified a token never minted: %q (%+v)", s, cl)
			}
			return
		}
		if len(s) >= 16 && strings.Contains(err.Error(), s) {
			t.Fatalf("error echoes the token: %v", err)
		}
	})
}
