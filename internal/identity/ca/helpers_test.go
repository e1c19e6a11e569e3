package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

var td = spiffeid.RequireTrustDomainFromString("mesh.test")

func newCA(t testing.TB, now func() time.Time) *ca.CA {
	t.Helper()
	c, err := ca.LoadOrCreate(t.TempDir(), td, now)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func wid(t testing.TB, ns, sa string) spiffeid.ID {
	t.Helper()
	id, err := identity.WorkloadID(td, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type csrOpts struct {
	uris   []string
	dns    []string
	ips    []net.IP
	emails []string
	key    crypto.Signer
}

func makeCSR(t testing.TB, o csrOpts) []byte {
	t.Helper()
	key := o.key
	if key == nil {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		key = k
	}
	tmpl := &x509.CertificateRequest{DNSNames: o.dns, IPAddresses: o.ips, EmailAddresses: o.emails}
	for _, u := range o.uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustID(t testing.TB, s string) spiffeid.ID {
	t.Helper()
	id, err := spiffeid.FromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustTD(t testing.TB, s string) spiffeid.TrustDomain {
	t.Helper()
	d, err := spiffeid.TrustDomainFromString(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
