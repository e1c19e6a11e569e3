package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Certifier turns a CSR into an SVID chain (leaf first) and the current trust
// bundle. The control plane's client implements it over gRPC; the CA's
// in-process form implements it in tests.
type Certifier interface {
	Certify(ctx context.Context, csrDER []byte) (chain [][]byte, bundle []*x509.Certificate, err error)
}

const (
	// ALPN is what proxies speak to each other for requests: HTTP/2,
	// many requests on few connections.
	ALPN = "h2"
	// ALPNTunnel is what a proxy offers on a connection of its own that
	// carries one tunnel (opaque TCP, an HTTP/1 upgrade): an HTTP/1.1
	// CONNECT, then raw bytes, with no framing or flow control of HTTP/2
	// in the way of bulk transfers.
	ALPNTunnel = "http/1.1"

	certifyTimeout    = 30 * time.Second
	defaultMinBackoff = 500 * time.Millisecond
	defaultMaxBackoff = 30 * time.Second
	minRenewDelay     = 100 * time.Millisecond
)

// Source holds one workload's identity: a private key made in memory (a new
// one for every renewal; never written or logged), the current SVID, and the
// trust bundle. Its TLS configs read the current certificate and bundle at
// every handshake, so a renewal or a new bundle takes effect without
// rebuilding anything or touching established connections.
type Source struct {
	id     spiffeid.ID
	c      Certifier
	log    *slog.Logger
	now    func() time.Time
	minBO  time.Duration
	maxBO  time.Duration
	svid   atomic.Pointer[svid]
	roots  atomic.Pointer[[]*x509.Certificate]
	ready  chan struct{}
	once   sync.Once
	renew  chan struct{}
	renews atomic.Uint64
}

// svid is a certificate with its private key. It logs as redacted.
type svid struct {
	cert tls.Certificate
	leaf *x509.Certificate
}

func (v *svid) String() string {
	return fmt.Sprintf("svid{%s, expires %s, key REDACTED}", v.leaf.URIs[0], v.leaf.NotAfter.UTC().Format(time.RFC3339))
}

func (v *svid) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", v.leaf.URIs[0].String()), slog.Time("expires", v.leaf.NotAfter), slog.String("key", "REDACTED"))
}

var (
	_ slog.LogValuer = (*svid)(nil)
	_ slog.LogValuer = (*Source)(nil)
	_ fmt.Stringer   = (*Source)(nil)
)

// NewSource returns a Source for id that obtains its SVIDs from c. It does
// nothing until Run.
func NewSource(id spiffeid.ID, c Certifier, logger *slog.Logger) *Source {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		id:    id,
		c:     c,
		log:   logger.With("spiffe_id", id.String()),
		now:   time.Now,
		minBO: defaultMinBackoff,
		maxBO: defaultMaxBackoff,
		ready: make(chan struct{}),
		renew: make(chan struct{}, 1),
	}
}

// ID is the SPIFFE ID this Source certifies.
func (s *Source) ID() spiffeid.ID { return s.id }

// String describes the Source without its key.
func (s *Source) String() string {
	if v := s.svid.Load(); v != nil {
		return "identity.Source{" + v.String() + "}"
	}
	return "identity.Source{" + s.id.String() + ", no SVID yet}"
}

// LogValue describes the Source without its key.
func (s *Source) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("id", s.id.String()), slog.String("key", "REDACTED")}
	if v := s.svid.Load(); v != nil {
		attrs = append(attrs, slog.Time("expires", v.leaf.NotAfter))
	}
	return slog.GroupValue(attrs...)
}

// Ready is closed once the first SVID is held.
func (s *Source) Ready() <-chan struct{} { return s.ready }

// Leaf returns the current leaf certificate, or nil before Ready.
func (s *Source) Leaf() *x509.Certificate {
	if v := s.svid.Load(); v != nil {
		return v.leaf
	}
	return nil
}

// Bundle returns the current trust anchors.
func (s *Source) Bundle() []*x509.Certificate {
	if r := s.roots.Load(); r != nil {
		return append([]*x509.Certificate(nil), (*r)...)
	}
	return nil
}

// Renewals counts the SVIDs obtained so far.
func (s *Source) Renewals() uint64 { return s.renews.Load() }

// SetBundle replaces the trust anchors (the control plane pushes a new bundle
// during a root rotation). An empty bundle is ignored: it would trust nobody.
func (s *Source) SetBundle(roots []*x509.Certificate) {
	if len(roots) == 0 {
		s.log.Warn("ignoring an empty trust bundle")
		return
	}
	r := append([]*x509.Certificate(nil), roots...)
	s.roots.Store(&r)
}

// RenewNow asks Run to renew the SVID at once (used during root rotation).
func (s *Source) RenewNow() {
	select {
	case s.renew <- struct{}{}:
	default:
	}
}

// Run obtains the first SVID and renews it at about half its remaining life
// (±10% jitter), retrying failures with jittered exponential backoff while
// the current certificate keeps being served. It returns nil when ctx is
// done.
func (s *Source) Run(ctx context.Context) error {
	backoff := s.minBO
	for {
		var wait time.Duration
		v, err := s.certify(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			wait = jitter(backoff, 0.2)
			backoff = min(backoff*2, s.maxBO)
			attrs := []any{"err", err, "retry_in", wait.Round(time.Millisecond)}
			if cur := s.svid.Load(); cur != nil {
				attrs = append(attrs, "current_expires", cur.leaf.NotAfter)
			}
			s.log.Warn("SVID renewal failed", attrs...)
		default:
			backoff = s.minBO
			got := s.now()
			s.svid.Store(v)
			s.renews.Add(1)
			s.once.Do(func() { close(s.ready) })
			wait = max(jitter(v.leaf.NotAfter.Sub(got)/2, 0.1), minRenewDelay)
			s.log.Info("SVID obtained", "svid", v, "renew_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-s.renew:
			t.Stop()
		case <-t.C:
		}
	}
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f].
func jitter(d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*mrand.Float64()))
}

// certify makes a fresh key and CSR, asks the Certifier, and checks the answer.
func (s *Source) certify(ctx context.Context) (*svid, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{s.id.URL()}}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, certifyTimeout)
	defer cancel()
	rawChain, bundle, err := s.c.Certify(cctx, csr)
	if err != nil {
		return nil, fmt.Errorf("certify %s: %w", s.id, err)
	}
	if len(bundle) == 0 {
		bundle = s.Bundle()
	}
	chain := make([]*x509.Certificate, 0, len(rawChain))
	for i, raw := range rawChain {
		c, err := x509.ParseCertificate(raw)
		if err != nil {
			return nil, fmt.Errorf("certify %s: certificate %d of the answer: %w", s.id, i, err)
		}
		chain = append(chain, c)
	}
	got, err := Verify(chain, bundle, s.id.TrustDomain(), s.now())
	if err != nil {
		return nil, fmt.Errorf("certify %s: the SVID received does not verify: %w", s.id, err)
	}
	if got != s.id {
		return nil, fmt.Errorf("certify %s: %w: the SVID received is for %s", s.id, ErrWrongID, got)
	}
	pub, ok := chain[0].PublicKey.(*ecdsa.PublicKey)
	if !ok || !pub.Equal(&key.PublicKey) {
		return nil, fmt.Errorf("certify %s: the SVID received is not for the key of the CSR", s.id)
	}
	if len(bundle) > 0 {
		s.SetBundle(bundle)
	}
	return &svid{cert: tls.Certificate{Certificate: rawChain, PrivateKey: key, Leaf: chain[0]}, leaf: chain[0]}, nil
}

var errNoSVID = errors.New("no SVID yet")

func (s *Source) current() (*tls.Certificate, error) {
	if v := s.svid.Load(); v != nil {
		return &v.cert, nil
	}
	return nil, fmt.Errorf("%s: %w", s.id, errNoSVID)
}

// VerifyPeer verifies a peer's chain against the current bundle and returns
// its SPIFFE ID. Errors wrap the Err* values of Verify.
func (s *Source) VerifyPeer(chain []*x509.Certificate) (spiffeid.ID, error) {
	return Verify(chain, s.Bundle(), s.id.TrustDomain(), s.now())
}

// ServerTLSConfig is the inbound side of mTLS: TLS 1.3 only, ALPN h2 or
// (for tunnels) http/1.1, a client certificate required and verified as an SVID of this trust domain
// against the current bundle, then authorize (nil admits every workload of
// the trust domain).
func (s *Source) ServerTLSConfig(authorize func(peer spiffeid.ID) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{ALPN, ALPNTunnel},
		ClientAuth: tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.current()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := s.VerifyPeer(cs.PeerCertificates)
			if err != nil {
				return fmt.Errorf("client certificate: %w", err)
			}
			if authorize != nil {
				if err := authorize(id); err != nil {
					return fmt.Errorf("client %s not authorized: %w", id, err)
				}
			}
			return nil
		},
	}
}

// ClientTLSConfig is the outbound side of mTLS to a peer that must be want:
// TLS 1.3 only, ALPN h2, this Source's SVID as client certificate, the
// server's chain verified against the current bundle and its ID compared to
// want.
func (s *Source) ClientTLSConfig(want spiffeid.ID) *tls.Config {
	return s.clientTLSConfig(want, ALPN)
}

func (s *Source) clientTLSConfig(want spiffeid.ID, proto string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{proto},
		// Go's hostname verification does not apply to SPIFFE IDs; the
		// chain and the ID are verified by VerifyConnection below.
		InsecureSkipVerify: true, //nolint:gosec // verified in VerifyConnection
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.current()
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := s.VerifyPeer(cs.PeerCertificates)
			if err != nil {
				return fmt.Errorf("server certificate: %w", err)
			}
			if id != want {
				return fmt.Errorf("server certificate: %w: peer is %s, want %s", ErrWrongID, id, want)
			}
			return nil
		},
	}
}

// DialTLS connects to addr and completes an mTLS handshake with a peer that
// must prove it is want.
func (s *Source) DialTLS(ctx context.Context, network, addr string, want spiffeid.ID) (net.Conn, error) {
	return s.dialTLS(ctx, network, addr, want, ALPN)
}

func (s *Source) dialTLS(ctx context.Context, network, addr string, want spiffeid.ID, proto string) (net.Conn, error) {
	d := net.Dialer{KeepAlive: 30 * time.Second}
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, s.clientTLSConfig(want, proto))
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("mTLS handshake with %s (want %s): %w", addr, want, err)
	}
	return conn, nil
}

// Dialer returns a dialer (it fits pool.Dialer) whose connections are mTLS
// to the identity expect gives for each address.
func (s *Source) Dialer(expect func(addr string) (spiffeid.ID, bool)) *Dialer {
	return &Dialer{s: s, expect: expect}
}

// Dialer dials mTLS connections; see Source.Dialer.
type Dialer struct {
	s      *Source
	expect func(addr string) (spiffeid.ID, bool)
}

// DialContext dials addr and verifies the peer is the identity expected
// there, offering ALPN h2.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return d.dial(ctx, network, addr, ALPN)
}

// DialTunnel is DialContext for a connection that carries one tunnel: it
// offers ALPNTunnel instead.
func (d *Dialer) DialTunnel(ctx context.Context, addr string) (net.Conn, error) {
	return d.dial(ctx, "tcp", addr, ALPNTunnel)
}

func (d *Dialer) dial(ctx context.Context, network, addr, proto string) (net.Conn, error) {
	want, ok := d.expect(addr)
	if !ok {
		return nil, fmt.Errorf("mTLS dial %s: no identity known for this address", addr)
	}
	return d.s.dialTLS(ctx, network, addr, want, proto)
}

// PeerID returns the verified SPIFFE ID of the peer of an mTLS connection
// that has completed its handshake.
func PeerID(cs tls.ConnectionState) (spiffeid.ID, error) {
	if len(cs.PeerCertificates) == 0 || !cs.HandshakeComplete {
		return spiffeid.ID{}, ErrNoCertificate
	}
	return x509svid.IDFromCert(cs.PeerCertificates[0])
}

// Certificate is the current SVID with its key, for a TLS server that
// builds its own config (the control plane's gRPC server).
func (s *Source) Certificate() (*tls.Certificate, error) { return s.current() }
