package identity

import (
	"crypto/x509"
	"fmt"
	"time"
)

// ExpiryWarnings describes, one line each, the certificates that are expired,
// not yet valid, or expire within the given duration of now, for `weft
// check`. Certificates in good standing give no line.
func ExpiryWarnings(certs []*x509.Certificate, now time.Time, within time.Duration) []string {
	var out []string
	for _, c := range certs {
		name := CertName(c)
		switch {
		case now.After(c.NotAfter):
			out = append(out, fmt.Sprintf("%s expired %s ago (at %s)", name, roundDur(now.Sub(c.NotAfter)), c.NotAfter.UTC().Format(time.RFC3339)))
		case now.Before(c.NotBefore):
			out = append(out, fmt.Sprintf("%s is not valid until %s (in %s); check the clocks", name, c.NotBefore.UTC().Format(time.RFC3339), roundDur(c.NotBefore.Sub(now))))
		case c.NotAfter.Sub(now) <= within:
			out = append(out, fmt.Sprintf("%s expires in %s (at %s)", name, roundDur(c.NotAfter.Sub(now)), c.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	return out
}

// CertName names a certificate for humans: its URI SAN, else its subject.
func CertName(c *x509.Certificate) string {
	if len(c.URIs) == 1 && (c.Subject.CommonName == "" || !c.IsCA) {
		if c.IsCA {
			return "CA " + c.URIs[0].String()
		}
		return c.URIs[0].String()
	}
	if c.Subject.CommonName != "" {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

func roundDur(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%dd%dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	case d >= time.Minute:
		return d.Round(time.Minute).String()
	default:
		return d.Round(time.Second).String()
	}
}
