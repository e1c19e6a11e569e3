package install

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// CertBundle is the webhook's serving certificate: the API server trusts
// CA (the caBundle) and the control plane serves Cert with Key. The file
// names of LoadCertBundle are cert-manager's, as a Secret of type
// kubernetes.io/tls has them.
type CertBundle struct {
	CA   []byte // PEM: ca.crt
	Cert []byte // PEM: tls.crt
	Key  []byte // PEM: tls.key
}

// Validity of the certificates GenerateCertBundle makes. The serving
// certificate is renewed by running `weft install` again (an upgrade
// does), so it lives long enough that a cluster upgraded once a year never
// sees it lapse.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	servingValidity = 2 * 365 * 24 * time.Hour
)

// GenerateCertBundle makes a self-signed CA and, signed by it, a serving
// certificate for dnsNames, both ECDSA P-256, valid from now.
func GenerateCertBundle(dnsNames []string, now time.Time) (*CertBundle, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "weft webhook CA"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("webhook CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: dnsNames[0]},
		DNSNames:     dnsNames,
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(servingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("webhook certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("webhook key: %w", err)
	}
	return &CertBundle{
		CA:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on Linux; a fixed serial would still
		// be a valid certificate.
		return big.NewInt(1)
	}
	return n
}

// LoadCertBundle reads ca.crt, tls.crt and tls.key from dir, as
// cert-manager writes them and as a kubernetes.io/tls Secret holds them
// (kubectl get secret -o jsonpath, base64 -d).
func LoadCertBundle(dir string) (*CertBundle, error) {
	var b CertBundle
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{"ca.crt", &b.CA}, {"tls.crt", &b.Cert}, {"tls.key", &b.Key}} {
		data, err := os.ReadFile(filepath.Join(dir, f.name))
		if err != nil {
			return nil, fmt.Errorf("webhook certificate: %w", err)
		}
		*f.dst = data
	}
	return &b, nil
}

// Verify checks that the bundle's key matches its certificate, that CA
// signed it, that it is valid at now, and that it is for dnsName: what
// the API server will check when it calls the webhook.
func (b *CertBundle) Verify(dnsName string, now time.Time) error {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return fmt.Errorf("webhook certificate and key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CA) {
		return errors.New("webhook CA bundle: no PEM certificate in it")
	}
	// An operator's tls.crt may carry intermediates after the leaf.
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fmt.Errorf("webhook certificate chain: %w", err)
		}
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{DNSName: dnsName, Roots: pool, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return fmt.Errorf("webhook certificate: %w", err)
	}
	return nil
}
