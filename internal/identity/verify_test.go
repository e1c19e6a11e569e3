package identity_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

func issue(t *testing.T, c *ca.CA, id spiffeid.ID, ttl time.Duration) []*x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{id.URL()}}, key)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := c.Sign(csr, id, ttl)
	if err != nil {
		t.Fatal(err)
	}
	var out []*x509.Certificate
	for _, r := range raw {
		cert, err := x509.ParseCertificate(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cert)
	}
	return out
}

func TestVerify(t *testing.T) {
	mesh, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherTD := spiffeid.RequireTrustDomainFromString("other.test")
	foreign, err := ca.LoadOrCreate(t.TempDir(), otherTD, nil)
	if err != nil {
		t.Fatal(err)
	}
	impostor, err := ca.LoadOrCreate(t.TempDir(), td, nil) // same trust domain, another root
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://mesh.test/ns/shop/sa/catalog")
	good := issue(t, mesh, id, time.Hour)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		chain   []*x509.Certificate
		now     time.Time
		want    error
		errPart string
	}{
		{name: "good", chain: good, now: now},
		{name: "wrong trust domain", chain: issue(t, foreign, spiffeid.RequireFromString("spiffe://other.test/ns/shop/sa/catalog"), time.Hour), now: now, want: identity.ErrWrongTrustDomain, errPart: `not in trust domain "mesh.test"`},
		{name: "expired", chain: good, now: now.Add(2 * time.Hour), want: identity.ErrExpired, errPart: "expired at"},
		{name: "not yet valid", chain: good, now: now.Add(-2 * time.Hour), want: identity.ErrNotYetValid, errPart: "valid from"},
		{name: "unknown CA", chain: issue(t, impostor, id, time.Hour), now: now, want: identity.ErrUnknownCA, errPart: "does not chain to any of the 1 root(s)"},
		{name: "missing intermediate", chain: good[:1], now: now, want: identity.ErrUnknownCA},
		{name: "CA as leaf", chain: []*x509.Certificate{mesh.Intermediate()}, now: now, want: identity.ErrInvalidChain, errPart: "CA flag"},
		{name: "root as leaf", chain: []*x509.Certificate{mesh.ActiveRoot()}, now: now, want: identity.ErrInvalidChain},
		{name: "no certificate", now: now, want: identity.ErrNoCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := identity.Verify(tc.chain, mesh.Bundle(), td, tc.now)
			if tc.want == nil {
				if err != nil || got != id {
					t.Fatalf("got %s, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("err = %q, want it to mention %q", err, tc.errPart)
			}
		})
	}
	if _, err := identity.Verify(good, nil, td, now); !errors.Is(err, identity.ErrNoBundle) {
		t.Errorf("empty bundle: %v", err)
	}
	if r, err := identity.CheckPin(mesh.Bundle(), identity.RootPin(mesh.ActiveRoot())); err != nil || !r.Equal(mesh.ActiveRoot()) {
		t.Errorf("CheckPin of the active root: %v", err)
	}
	if _, err := identity.CheckPin(mesh.Bundle(), identity.RootPin(impostor.ActiveRoot())); !errors.Is(err, identity.ErrUnknownCA) {
		t.Errorf("CheckPin of another root: %v", err)
	}
}

func TestExpiryWarnings(t *testing.T) {
	mesh, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := spiffeid.RequireFromString("spiffe://mesh.test/ns/shop/sa/catalog")
	leaf := issue(t, mesh, id, time.Hour)[0]
	now := time.Now()
	certs := []*x509.Certificate{leaf, mesh.ActiveRoot()}
	if w := identity.ExpiryWarnings(certs, now, time.Minute); len(w) != 0 {
		t.Errorf("nothing due, got %q", w)
	}
	w := identity.ExpiryWarnings(certs, now, 2*time.Hour)
	if len(w) != 1 || !strings.HasPrefix(w[0], id.String()+" expires in ") {
		t.Errorf("leaf due: %q", w)
	}
	w = identity.ExpiryWarnings(certs, now.Add(3*time.Hour), time.Minute)
	if len(w) != 1 || !strings.Contains(w[0], "expired 2h") {
		t.Errorf("leaf expired: %q", w)
	}
	w = identity.ExpiryWarnings(certs, now.Add(-2*time.Hour), time.Minute)
	if len(w) != 2 || !strings.Contains(w[0], "not valid until") {
		t.Errorf("clock behind: %q", w)
	}
}
