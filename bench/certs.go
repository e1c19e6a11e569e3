package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certs are the files of a throwaway CA made for one run: the server-side
// hop presents the server certificate and requires a client certificate
// chained to the CA, which the client-side hop presents.
type certs struct {
	CA           string
	ServerCert   string
	ServerKey    string
	ServerBundle string // certificate then key, the form HAProxy reads
	ClientCert   string
	ClientKey    string
	ClientBundle string
	ServerName   string
}

// makeCerts writes a fresh CA and the two leaves under dir.
func makeCerts(dir string) (*certs, error) {
	c := &certs{
		CA:           filepath.Join(dir, "ca.pem"),
		ServerCert:   filepath.Join(dir, "server.pem"),
		ServerKey:    filepath.Join(dir, "server-key.pem"),
		ServerBundle: filepath.Join(dir, "server-bundle.pem"),
		ClientCert:   filepath.Join(dir, "client.pem"),
		ClientKey:    filepath.Join(dir, "client-key.pem"),
		ClientBundle: filepath.Join(dir, "client-bundle.pem"),
		ServerName:   "server.bench.test",
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "weft bench throwaway CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if err := writePEM(c.CA, pemCert(caDER)); err != nil {
		return nil, err
	}
	leaves := []struct {
		serial       int64
		cn           string
		usage        x509.ExtKeyUsage
		cert, key, b string
	}{
		{2, c.ServerName, x509.ExtKeyUsageServerAuth, c.ServerCert, c.ServerKey, c.ServerBundle},
		{3, "client.bench.test", x509.ExtKeyUsageClientAuth, c.ClientCert, c.ClientKey, c.ClientBundle},
	}
	for _, l := range leaves {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", l.cn, err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(l.serial),
			Subject:      pkix.Name{CommonName: l.cn},
			DNSNames:     []string{l.cn},
			IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{l.usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return nil, fmt.Errorf("%s certificate: %w", l.cn, err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, fmt.Errorf("%s key: %w", l.cn, err)
		}
		certPEM := pemCert(der)
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
		for path, data := range map[string][]byte{l.cert: certPEM, l.key: keyPEM, l.b: append(append([]byte{}, certPEM...), keyPEM...)} {
			if err := writePEM(path, data); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func writePEM(path string, data []byte) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
