package ca

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
)

// writeFileAtomic writes data to dir/name through a temporary file and a
// rename, so a crash leaves the old file or the new one.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// readCerts reads every CERTIFICATE block of a PEM file.
func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseCerts(path, b)
}

// parseCerts parses every CERTIFICATE block of PEM data; name says where
// the data comes from, for errors.
func parseCerts(name string, b []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i := 0; ; i++ {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: PEM block %d: %w", name, i, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", name)
	}
	return out, nil
}

// readKey reads a PEM private key (PKCS#8, SEC 1 or PKCS#1). The error never
// includes key material.
func readKey(path string) (any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKey(path, b)
}

// parseKey parses a PEM private key as readKey does; name says where the
// data comes from, for errors, which never include key material.
func parseKey(name string, b []byte) (any, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: no PEM private key block", name)
		}
		switch blk.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: PKCS#8 private key does not parse", name)
			}
			return k, nil
		case "EC PRIVATE KEY":
			k, err := x509.ParseECPrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: EC private key does not parse", name)
			}
			return k, nil
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: RSA private key does not parse", name)
			}
			return k, nil
		}
	}
}

// keyStore holds a CA's keys, certificates, state and join token key, by
// file name: a directory, or memory, whose contents the control plane
// keeps in a Kubernetes Secret shared by its replicas.
type keyStore interface {
	// read returns an error wrapping os.ErrNotExist for a name not held.
	read(name string) ([]byte, error)
	write(name string, data []byte, perm os.FileMode) error
	remove(name string)
	// where names a file in errors: its path, or the Secret and key.
	where(name string) string
}

type dirStore string

func (d dirStore) read(name string) ([]byte, error) { return os.ReadFile(d.where(name)) }

func (d dirStore) write(name string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(d.where(name), data, perm)
}

func (d dirStore) remove(name string) { _ = os.Remove(d.where(name)) }

func (d dirStore) where(name string) string { return filepath.Join(string(d), name) }

// memStore is guarded by the CA's mutex, or owned by one goroutine while
// the CA is made.
type memStore struct {
	label string
	files map[string][]byte
}

func (m *memStore) read(name string) ([]byte, error) {
	b, ok := m.files[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", m.where(name), os.ErrNotExist)
	}
	return b, nil
}

func (m *memStore) write(name string, data []byte, _ os.FileMode) error {
	m.files[name] = append([]byte(nil), data...)
	return nil
}

func (m *memStore) remove(name string) { delete(m.files, name) }

func (m *memStore) where(name string) string { return fmt.Sprintf("%s key %q", m.label, name) }
