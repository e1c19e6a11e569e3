package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/identity/issuer"
)

// adminTokenFile holds the bearer token for the admin API's mutating
// calls (minting join tokens, rotating the root): whoever can read the
// control plane's state directory may make them.
const adminTokenFile = "admin.token"

// newIdentity loads or makes the CA, and the control plane's own SVID.
func (cp *ControlPlane) newIdentity(ctx context.Context) error {
	tdName := cp.opts.TrustDomain
	if tdName == "" {
		tdName = DefaultTrustDomain
	}
	td, err := spiffeid.TrustDomainFromString(tdName)
	if err != nil {
		return fmt.Errorf("trust domain %q: %w", tdName, err)
	}
	caState := filepath.Join(cp.opts.StateDir, "ca")
	switch {
	case cp.opts.CASecret != "":
		log := cp.opts.Logger.With("component", "identity")
		if cp.ca, cp.adminToken, err = loadCASecret(ctx, cp.client, cp.opts.Namespace, cp.opts.CASecret, caState, td, log); err == nil {
			cp.caSecret = &caSecret{client: cp.client, namespace: cp.opts.Namespace, name: cp.opts.CASecret, ca: cp.ca, log: log,
				poll: caSecretPoll, changed: cp.bundleChanged}
			cp.ca.SetPersist(cp.caSecret.persist)
			cp.ca.SetShareRevocation(cp.caSecret.shareRevocation)
		}
	case cp.opts.CADir != "":
		cp.ca, err = ca.LoadProvided(cp.opts.CADir, caState, td, time.Now)
	default:
		cp.ca, err = ca.LoadOrCreate(caState, td, time.Now)
	}
	if err != nil {
		return fmt.Errorf("certificate authority: %w", err)
	}
	log := cp.opts.Logger.With("component", "identity")
	cp.issuer = issuer.New(cp.ca, cp.opts.LeafTTL, log)
	selfID := identity.ControlPlaneID(td)
	cp.self = identity.NewSource(selfID, cp.ca.Certifier(selfID, cp.issuer.LeafTTL()), log)
	tokenPath := filepath.Join(cp.opts.StateDir, adminTokenFile)
	if cp.adminToken != "" {
		// From the Secret: written where the CLI on this host looks.
		if err := os.WriteFile(tokenPath, []byte(cp.adminToken+"\n"), 0o600); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	} else if cp.adminToken, err = loadOrMakeSecret(tokenPath); err != nil {
		return fmt.Errorf("admin token: %w", err)
	}
	return nil
}

// caSecretPoll is how often a replica reads the CA Secret for the
// rotation steps of the others: RBAC grants get on it, not watch.
const caSecretPoll = 10 * time.Second

// bundleChanged hands a new trust bundle to the control plane's own SVID
// source, renewing its certificate, and to every proxy's stream.
func (cp *ControlPlane) bundleChanged() {
	cp.self.SetBundle(cp.ca.Bundle())
	cp.self.RenewNow()
	cp.discovery.BundleChanged()
}

// serverTLS is the gRPC listener's TLS: the control plane's SVID with the
// active root appended (a new proxy checks that root against the pin its
// join token carries), and client certificates asked for but verified per
// call, since Certify also takes callers that have only a join token.
func (cp *ControlPlane) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{identity.ALPN},
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := cp.self.Certificate()
			if err != nil {
				return nil, err
			}
			withRoot := *cert
			withRoot.Certificate = append(append([][]byte(nil), cert.Certificate...), cp.ca.ActiveRoot().Raw)
			return &withRoot, nil
		},
	}
}

// loadOrMakeSecret reads a random secret from path, making it (0600) if
// it does not exist.
func loadOrMakeSecret(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		if s := strings.TrimSpace(string(data)); s != "" {
			return s, nil
		}
		return "", fmt.Errorf("%s is empty", path)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	secret := rand.Text()
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", err
	}
	return secret, nil
}

// TrustDomain is the mesh's trust domain.
func (cp *ControlPlane) TrustDomain() string { return cp.ca.TrustDomain().String() }
