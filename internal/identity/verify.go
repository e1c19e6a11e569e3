package identity

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Verification failures. Errors returned by Verify wrap exactly one of them,
// with the details (IDs, times, subjects) in the message.
var (
	ErrNoCertificate    = errors.New("no certificate presented")
	ErrNotSVID          = errors.New("not an X.509-SVID")
	ErrWrongTrustDomain = errors.New("wrong trust domain")
	ErrWrongID          = errors.New("wrong SPIFFE ID")
	ErrExpired          = errors.New("certificate expired")
	ErrNotYetValid      = errors.New("certificate not yet valid")
	ErrUnknownCA        = errors.New("certificate signed by unknown CA")
	ErrInvalidChain     = errors.New("invalid certificate chain")
	ErrNoBundle         = errors.New("no trust bundle")
)

// Verify checks that chain (leaf first) is an X.509-SVID of trust domain td
// that chains, at time now, to one of roots, and returns its SPIFFE ID.
func Verify(chain []*x509.Certificate, roots []*x509.Certificate, td spiffeid.TrustDomain, now time.Time) (spiffeid.ID, error) {
	if len(chain) == 0 {
		return spiffeid.ID{}, ErrNoCertificate
	}
	if len(roots) == 0 {
		return spiffeid.ID{}, ErrNoBundle
	}
	leaf := chain[0]
	id, err := x509svid.IDFromCert(leaf)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: %v", ErrNotSVID, err)
	}
	if !id.MemberOf(td) {
		return id, fmt.Errorf("%w: peer %s is not in trust domain %q", ErrWrongTrustDomain, id, td.Name())
	}
	for i, c := range chain {
		what := "leaf " + id.String()
		if i > 0 {
			what = fmt.Sprintf("chain[%d] %q", i, c.Subject.String())
		}
		if now.Before(c.NotBefore) {
			return id, fmt.Errorf("%w: %s is valid from %s, now is %s", ErrNotYetValid, what, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.After(c.NotAfter) {
			return id, fmt.Errorf("%w: %s expired at %s, now is %s", ErrExpired, what, c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	_, _, err = x509svid.Verify(chain, x509bundle.FromX509Authorities(td, roots), x509svid.WithTime(now))
	if err != nil {
		var ua x509.UnknownAuthorityError
		var ci x509.CertificateInvalidError
		switch {
		case errors.As(err, &ua):
			return id, fmt.Errorf("%w: %s does not chain to any of the %d root(s) of trust domain %q", ErrUnknownCA, id, len(roots), td.Name())
		case errors.As(err, &ci) && ci.Reason == x509.Expired:
			return id, fmt.Errorf("%w: %s: %v", ErrExpired, id, ci)
		default:
			return id, fmt.Errorf("%w: %s: %v", ErrInvalidChain, id, err)
		}
	}
	return id, nil
}

// VerifyRaw is Verify for DER certificates, as TLS presents them.
func VerifyRaw(rawChain [][]byte, roots []*x509.Certificate, td spiffeid.TrustDomain, now time.Time) (spiffeid.ID, error) {
	if len(rawChain) == 0 {
		return spiffeid.ID{}, ErrNoCertificate
	}
	chain := make([]*x509.Certificate, 0, len(rawChain))
	for i, raw := range rawChain {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("%w: certificate %d: %v", ErrInvalidChain, i, err)
		}
		chain = append(chain, c)
	}
	return Verify(chain, roots, td, now)
}

// RootPin is the pin of a trust anchor: "sha256:" and the hex SHA-256 of its
// SubjectPublicKeyInfo, as kubeadm pins its CA. Join tokens carry the pin of
// the active root so a new proxy can check the control plane at first contact.
func RootPin(root *x509.Certificate) string {
	sum := sha256.Sum256(root.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Fingerprint is the hex SHA-256 of a certificate's DER encoding.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// CheckPin returns the root of bundle whose RootPin is pin, or an error if
// none is.
func CheckPin(bundle []*x509.Certificate, pin string) (*x509.Certificate, error) {
	for _, r := range bundle {
		if RootPin(r) == pin {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: none of the %d root(s) in the bundle matches the pinned root %s", ErrUnknownCA, len(bundle), pin)
}
