package ca

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// The files of an operator-provided CA, as cert-manager writes a CA
// Certificate's Secret.
const (
	ProvidedCertFile = "tls.crt" // the issuing intermediate, then any chain up to the root
	ProvidedKeyFile  = "tls.key" // the intermediate's private key
	ProvidedRootFile = "ca.crt"  // the trust bundle: one root, or two while rotating
)

// LoadProvided loads an operator's CA from certDir (cert-manager's layout:
// tls.crt, tls.key, ca.crt; it may be a read-only Secret mount) and keeps
// its own state (token key, revocations, leaf log) in stateDir. It checks
// that the key matches the intermediate, the intermediate is a CA valid now
// and chains to a root of ca.crt. Rotating a provided root is the operator's:
// put both roots in ca.crt, switch tls.crt/tls.key, then drop the old root,
// restarting (or reloading) the control plane at each step.
func LoadProvided(certDir, stateDir string, trustDomain spiffeid.TrustDomain, now func() time.Time) (*CA, error) {
	c, err := newCA(stateDir, trustDomain, now)
	if err != nil {
		return nil, err
	}
	c.provided = true
	crtPath := filepath.Join(certDir, ProvidedCertFile)
	keyPath := filepath.Join(certDir, ProvidedKeyFile)
	rootPath := filepath.Join(certDir, ProvidedRootFile)

	chain, err := readCerts(crtPath)
	if err != nil {
		return nil, fmt.Errorf("provided CA: %w", err)
	}
	roots, err := readCerts(rootPath)
	if err != nil {
		return nil, fmt.Errorf("provided CA: %w", err)
	}
	k, err := readKey(keyPath)
	if err != nil {
		return nil, fmt.Errorf("provided CA: %w", err)
	}
	inter := chain[0]
	signer, ok := k.(crypto.Signer)
	if !ok || !publicKeyEqual(signer.Public(), inter.PublicKey) {
		return nil, fmt.Errorf("provided CA: %s does not match the first certificate of %s (%q)", keyPath, crtPath, inter.Subject.String())
	}
	if !inter.BasicConstraintsValid || !inter.IsCA || inter.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("provided CA: %s: %q is not a CA certificate (needs basic constraints CA:true and key usage certSign)", crtPath, inter.Subject.String())
	}
	t := c.now()
	for _, cert := range append(append([]*x509.Certificate(nil), chain...), roots...) {
		if t.Before(cert.NotBefore) || t.After(cert.NotAfter) {
			return nil, fmt.Errorf("provided CA: %q is not valid now (%s): valid from %s to %s", cert.Subject.String(),
				t.UTC().Format(time.RFC3339), cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	for _, r := range roots {
		if !r.IsCA {
			return nil, fmt.Errorf("provided CA: %s: %q is not a CA certificate", rootPath, r.Subject.String())
		}
	}
	rootPool, interPool := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, ic := range chain[1:] {
		interPool.AddCert(ic)
	}
	verified, err := inter.Verify(x509.VerifyOptions{Roots: rootPool, Intermediates: interPool, CurrentTime: t, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		var ua x509.UnknownAuthorityError
		if errors.As(err, &ua) {
			return nil, fmt.Errorf("provided CA: %s: %q does not chain to any root in %s", crtPath, inter.Subject.String(), rootPath)
		}
		return nil, fmt.Errorf("provided CA: %s: %q does not verify against %s: %w", crtPath, inter.Subject.String(), rootPath, err)
	}
	root := verified[0][len(verified[0])-1]
	g := &generation{root: root, inter: inter, interKey: signer}
	for _, ic := range verified[0][:len(verified[0])-1] { // the intermediate and any between it and the root
		g.chain = append(g.chain, ic.Raw)
	}
	c.gens, c.active, c.bundleVersion = []*generation{g}, g, 1
	c.roots = roots
	if err := c.loadAux(); err != nil {
		return nil, err
	}
	return c, nil
}
