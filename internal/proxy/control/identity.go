package control

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/identity"
)

// Trust is how a proxy knows it talks to the real control plane, and
// proves to it who it is: before its first certificate, the root pin and
// the join token; after, its SVID and the trust bundle.
type Trust struct {
	td    spiffeid.TrustDomain
	cpID  spiffeid.ID
	token string
	pin   string
	// roots, when set, are trusted from the start instead of a pin: the
	// CA bundle a cluster hands its Pods (Kubernetes mode).
	roots []*x509.Certificate
	src   atomic.Pointer[identity.Source]
	// bundleVersion is the version of the bundle and signing key the
	// current SVID was issued under.
	bundleVersion atomic.Uint64
}

// NewTrust reads a join token; it names the identity the proxy may have
// and pins the control plane's root.
func NewTrust(td spiffeid.TrustDomain, token string) (*Trust, identity.TokenClaims, error) {
	claims, err := identity.ParseTokenUnverified(token)
	if err != nil {
		return nil, claims, fmt.Errorf("join token: %w", err)
	}
	if claims.Root == "" {
		return nil, claims, errors.New("join token: it pins no root")
	}
	return &Trust{td: td, cpID: identity.ControlPlaneID(td), token: token, pin: claims.Root}, claims, nil
}

// NewTrustFromRoots trusts roots (the control plane's CA bundle, as a
// cluster distributes it) and proves the proxy's identity with token, a
// credential the control plane checks itself: a Kubernetes service
// account token for audience weft.
func NewTrustFromRoots(td spiffeid.TrustDomain, roots []*x509.Certificate, token string) (*Trust, error) {
	if len(roots) == 0 {
		return nil, errors.New("control plane trust: no CA certificate")
	}
	if token == "" {
		return nil, errors.New("control plane trust: no token")
	}
	return &Trust{td: td, cpID: identity.ControlPlaneID(td), token: token, roots: roots}, nil
}

// Bind gives the Trust the Source whose SVID and bundle it then uses.
func (t *Trust) Bind(src *identity.Source) { t.src.Store(src) }

// OnBundle takes a trust bundle the control plane pushes (it fits
// Client.OnBundle). A version other than the one the current SVID came
// with means a rotation step: the bundle is swapped in and the SVID
// renewed at once, so the proxy follows the CA's new signing key.
func (t *Trust) OnBundle(roots []*x509.Certificate, version uint64) {
	src := t.src.Load()
	if src == nil || version == t.bundleVersion.Load() {
		return
	}
	src.SetBundle(roots)
	src.RenewNow()
}

// TLS is the client side of every control-plane connection.
func (t *Trust) TLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{identity.ALPN},
		// The chain and the control plane's SPIFFE ID are verified in
		// VerifyConnection; Go's host name check does not apply.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if src := t.src.Load(); src != nil {
				if cert, err := src.Certificate(); err == nil {
					return cert, nil
				}
			}
			return &tls.Certificate{}, nil // none yet: Certify takes the join token
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := t.verify(cs.PeerCertificates)
			if err != nil {
				return fmt.Errorf("control plane certificate: %w", err)
			}
			if id != t.cpID {
				return fmt.Errorf("control plane certificate: %w: peer is %s, want %s", identity.ErrWrongID, id, t.cpID)
			}
			return nil
		},
	}
}

func (t *Trust) verify(chain []*x509.Certificate) (spiffeid.ID, error) {
	var roots []*x509.Certificate
	if src := t.src.Load(); src != nil {
		roots = src.Bundle()
	}
	if len(roots) == 0 && len(t.roots) > 0 {
		roots = t.roots
	}
	if len(roots) == 0 {
		// First contact: the control plane sends its root last, and it must
		// be the one the join token pins.
		if len(chain) < 2 {
			return spiffeid.ID{}, errors.New("the control plane sent no root to check against the join token's pin")
		}
		root, err := identity.CheckPin(chain[len(chain)-1:], t.pin)
		if err != nil {
			return spiffeid.ID{}, fmt.Errorf("join token pin: %w", err)
		}
		roots, chain = []*x509.Certificate{root}, chain[:len(chain)-1]
	}
	return identity.Verify(chain, roots, t.td, time.Now())
}

// Credentials are the transport credentials of the control-plane
// connection for discovery and registration. Dial it once the Source has
// its first SVID: the control plane refuses those calls without one.
func (t *Trust) Credentials() credentials.TransportCredentials { return credentials.NewTLS(t.TLS()) }

// Certifier gets SVIDs from the control plane's Identity service.
type Certifier struct {
	target string
	trust  *Trust
}

var _ identity.Certifier = (*Certifier)(nil)

// NewCertifier returns a Certifier for the control plane at target.
func NewCertifier(target string, t *Trust) *Certifier { return &Certifier{target: target, trust: t} }

// Certify asks for a certificate on a connection of its own, so the call
// carries the SVID the proxy holds now (a renewal), or, before the first
// one or after it expired, the join token.
func (c *Certifier) Certify(ctx context.Context, csr []byte) ([][]byte, []*x509.Certificate, error) {
	conn, err := grpc.NewClient(c.target, grpc.WithTransportCredentials(c.trust.Credentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("control plane %s: %w", c.target, err)
	}
	defer conn.Close()
	req := &meshv1.CertifyRequest{Csr: csr}
	if !c.trust.hasValidSVID() {
		req.Token = c.trust.token
	}
	resp, err := meshv1.NewIdentityClient(conn).Certify(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	roots, err := parseRoots(resp.GetTrustBundle())
	if err != nil {
		return nil, nil, fmt.Errorf("trust bundle: %w", err)
	}
	c.trust.bundleVersion.Store(resp.GetBundleVersion())
	return resp.GetChain(), roots, nil
}

func (t *Trust) hasValidSVID() bool {
	src := t.src.Load()
	if src == nil {
		return false
	}
	leaf := src.Leaf()
	return leaf != nil && time.Now().Before(leaf.NotAfter)
}
