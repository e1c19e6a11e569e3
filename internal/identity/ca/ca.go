package ca

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
)

const (
	// RootLifetime and IntermediateLifetime are those of a self-managed CA.
	RootLifetime         = 10 * 365 * 24 * time.Hour
	IntermediateLifetime = 365 * 24 * time.Hour
	// MaxCSRSize bounds the CSRs Sign reads.
	MaxCSRSize = 16 << 10
	// leafBackdate absorbs small clock differences between proxies.
	leafBackdate = time.Minute
	caBackdate   = time.Hour
	minRSABits   = 2048
)

// Errors wrapped by the CA's refusals.
var (
	ErrCSRRefused = errors.New("CSR refused")
	ErrProvided   = errors.New("the CA is operator-provided")
	ErrRotation   = errors.New("root rotation")
)

// generation is one root and the intermediate that signs under it.
type generation struct {
	n        int // 0 for an operator-provided CA
	root     *x509.Certificate
	rootKey  *ecdsa.PrivateKey // nil when provided
	inter    *x509.Certificate
	interKey crypto.Signer
	chain    [][]byte // intermediate first, up to (not including) the root
}

// CA is weft's certificate authority. It is safe for concurrent use.
type CA struct {
	td       spiffeid.TrustDomain
	now      func() time.Time
	dir      string   // this process's own state: revocations, leaf log
	keys     keyStore // self-managed keys, certificates and state; the join token key
	provided bool
	// persist, when set, stores the keys' files at each rotation step.
	persist func(map[string][]byte) error
	// shareRevocation, when set, hands a revoked token ID to the other
	// replicas.
	shareRevocation func(id string) error

	mu            sync.Mutex
	gens          []*generation       // self-managed: the bundle's generations, oldest first
	roots         []*x509.Certificate // the trust bundle, oldest first
	active        *generation
	next          int
	bundleVersion uint64
	tokenKey      []byte
	revoked       map[string]struct{}
	leaves        map[string][]time.Time // root fingerprint -> NotAfter of each leaf issued
}

// String describes the CA without its keys.
func (c *CA) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("ca.CA{trust domain %q, %d root(s), bundle version %d, keys REDACTED}", c.td.Name(), len(c.roots), c.bundleVersion)
}

// LogValue describes the CA without its keys.
func (c *CA) LogValue() slog.Value {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slog.GroupValue(slog.String("trust_domain", c.td.Name()), slog.Int("roots", len(c.roots)),
		slog.Uint64("bundle_version", c.bundleVersion), slog.String("keys", "REDACTED"))
}

var (
	_ slog.LogValuer = (*CA)(nil)
	_ fmt.Stringer   = (*CA)(nil)
)

// state is state.json of a self-managed CA.
type state struct {
	Version       int    `json:"version"`
	Bundle        []int  `json:"bundle"` // generations in the bundle, oldest first
	Active        int    `json:"active"` // the generation that signs
	Next          int    `json:"next"`
	BundleVersion uint64 `json:"bundleVersion"`
}

const stateFile = "state.json"

func genFile(kind string, n int, ext string) string {
	return kind + "-" + strconv.Itoa(n) + "." + ext
}

// LoadOrCreate loads the self-managed CA kept in dir, or, at first start,
// makes one: a self-signed ECDSA P-256 root (10 years) and an issuing
// intermediate (1 year) signed by it. Keys are written 0600, certificates
// 0644, dir 0700. now is the clock (nil is time.Now).
func LoadOrCreate(dir string, trustDomain spiffeid.TrustDomain, now func() time.Time) (*CA, error) {
	c, err := newCA(dir, trustDomain, now)
	if err != nil {
		return nil, err
	}
	b, err := c.keys.read(stateFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		err = c.create()
	case err != nil:
		err = fmt.Errorf("CA state: %w", err)
	default:
		err = c.load(b)
	}
	if err != nil {
		return nil, err
	}
	if err := c.loadAux(); err != nil {
		return nil, err
	}
	return c, nil
}

func newCA(dir string, td spiffeid.TrustDomain, now func() time.Time) (*CA, error) {
	if td.IsZero() {
		return nil, errors.New("CA: trust domain is empty")
	}
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("CA directory: %w", err)
	}
	return &CA{td: td, now: now, dir: dir, keys: dirStore(dir), revoked: map[string]struct{}{}, leaves: map[string][]time.Time{}}, nil
}

func (c *CA) create() error {
	g, err := c.newGeneration(1)
	if err != nil {
		return err
	}
	c.gens = []*generation{g}
	c.active = g
	c.next = 2
	c.bundleVersion = 1
	c.syncRoots()
	return c.writeState()
}

func (c *CA) load(b []byte) error {
	sp := c.keys.where(stateFile)
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("CA state %s: %w", sp, err)
	}
	if st.Version != 1 || len(st.Bundle) == 0 || len(st.Bundle) > 2 {
		return fmt.Errorf("CA state %s: unsupported version %d or bundle of %d roots", sp, st.Version, len(st.Bundle))
	}
	for _, n := range st.Bundle {
		g, err := c.loadGeneration(n)
		if err != nil {
			return err
		}
		c.gens = append(c.gens, g)
		if n == st.Active {
			c.active = g
		}
	}
	if c.active == nil {
		return fmt.Errorf("CA state %s: active generation %d is not in the bundle %v", sp, st.Active, st.Bundle)
	}
	c.next, c.bundleVersion = st.Next, st.BundleVersion
	c.syncRoots()
	return nil
}

func (c *CA) syncRoots() {
	c.roots = c.roots[:0:0]
	for _, g := range c.gens {
		c.roots = append(c.roots, g.root)
	}
}

func (c *CA) writeState() error {
	st := state{Version: 1, Active: c.active.n, Next: c.next, BundleVersion: c.bundleVersion}
	for _, g := range c.gens {
		st.Bundle = append(st.Bundle, g.n)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := c.keys.write(stateFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("CA state: %w", err)
	}
	return nil
}

// randSerial is a uniformly random positive 128-bit serial number.
func randSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// newGeneration makes and stores root-n and intermediate-n.
func (c *CA) newGeneration(n int) (*generation, error) {
	now := c.now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"weft"}, CommonName: fmt.Sprintf("weft root %d (%s)", n, c.td.Name())},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              now.Add(RootLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		URIs:                  []*url.URL{c.td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := c.keys.write(genFile("root", n, "key"), kp, 0o600); err != nil {
		return nil, fmt.Errorf("write root key: %w", err)
	}
	if err := c.keys.write(genFile("root", n, "crt"), certPEM(root), 0o644); err != nil {
		return nil, fmt.Errorf("write root certificate: %w", err)
	}
	g := &generation{n: n, root: root, rootKey: key}
	if err := c.issueIntermediate(g); err != nil {
		return nil, err
	}
	return g, nil
}

// issueIntermediate makes and stores a new intermediate for g's root.
func (c *CA) issueIntermediate(g *generation) error {
	now := c.now()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := randSerial()
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"weft"}, CommonName: fmt.Sprintf("weft intermediate %d (%s)", g.n, c.td.Name())},
		NotBefore:             now.Add(-caBackdate),
		NotAfter:              minTime(now.Add(IntermediateLifetime), g.root.NotAfter),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  []*url.URL{c.td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.root, &key.PublicKey, g.rootKey)
	if err != nil {
		return fmt.Errorf("create intermediate: %w", err)
	}
	inter, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	kp, err := keyPEM(key)
	if err != nil {
		return err
	}
	// Key first: a crash between the two writes leaves a pair that does not
	// match, which the next load detects and repairs by issuing again.
	if err := c.keys.write(genFile("intermediate", g.n, "key"), kp, 0o600); err != nil {
		return fmt.Errorf("write intermediate key: %w", err)
	}
	if err := c.keys.write(genFile("intermediate", g.n, "crt"), certPEM(inter), 0o644); err != nil {
		return fmt.Errorf("write intermediate certificate: %w", err)
	}
	g.inter, g.interKey, g.chain = inter, key, [][]byte{inter.Raw}
	return nil
}

func (c *CA) loadGeneration(n int) (*generation, error) {
	rp, kp := c.keys.where(genFile("root", n, "crt")), c.keys.where(genFile("root", n, "key"))
	roots, err := c.readCerts(genFile("root", n, "crt"))
	if err != nil {
		return nil, fmt.Errorf("CA root: %w", err)
	}
	root := roots[0]
	k, err := c.readKey(genFile("root", n, "key"))
	if err != nil {
		return nil, fmt.Errorf("CA root key: %w", err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || !key.PublicKey.Equal(root.PublicKey) {
		return nil, fmt.Errorf("CA root key %s: does not match the certificate in %s", kp, rp)
	}
	if len(root.URIs) == 1 && root.URIs[0].String() != c.td.IDString() {
		return nil, fmt.Errorf("CA root %s: made for %s, not trust domain %q", rp, root.URIs[0], c.td.Name())
	}
	g := &generation{n: n, root: root, rootKey: key}
	if err := c.loadIntermediate(g); err != nil {
		slog.Default().Warn("CA intermediate unusable, issuing a new one", "generation", n, "reason", err.Error())
		if err := c.issueIntermediate(g); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (c *CA) loadIntermediate(g *generation) error {
	ip, kp := c.keys.where(genFile("intermediate", g.n, "crt")), c.keys.where(genFile("intermediate", g.n, "key"))
	certs, err := c.readCerts(genFile("intermediate", g.n, "crt"))
	if err != nil {
		return err
	}
	inter := certs[0]
	k, err := c.readKey(genFile("intermediate", g.n, "key"))
	if err != nil {
		return err
	}
	signer, ok := k.(crypto.Signer)
	if !ok || !publicKeyEqual(signer.Public(), inter.PublicKey) {
		return fmt.Errorf("%s does not match %s", kp, ip)
	}
	if err := inter.CheckSignatureFrom(g.root); err != nil {
		return fmt.Errorf("%s is not signed by root %d: %w", ip, g.n, err)
	}
	g.inter, g.interKey, g.chain = inter, signer, [][]byte{inter.Raw}
	if c.needsNewIntermediate(g) {
		return fmt.Errorf("%s expires at %s", ip, inter.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// needsNewIntermediate: less than a third of its life left, or not valid now.
func (c *CA) needsNewIntermediate(g *generation) bool {
	if g.rootKey == nil {
		return false
	}
	now := c.now()
	life := g.inter.NotAfter.Sub(g.inter.NotBefore)
	return now.Before(g.inter.NotBefore) || g.inter.NotAfter.Sub(now) < life/3
}

func (c *CA) readCerts(name string) ([]*x509.Certificate, error) {
	b, err := c.keys.read(name)
	if err != nil {
		return nil, err
	}
	return parseCerts(c.keys.where(name), b)
}

func (c *CA) readKey(name string) (any, error) {
	b, err := c.keys.read(name)
	if err != nil {
		return nil, err
	}
	return parseKey(c.keys.where(name), b)
}

func publicKeyEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// TrustDomain is the CA's trust domain.
func (c *CA) TrustDomain() spiffeid.TrustDomain { return c.td }

// Bundle returns the trust anchors: one root, or two during a rotation.
func (c *CA) Bundle() []*x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*x509.Certificate(nil), c.roots...)
}

// BundleVersion changes with every change of the bundle or of the signing
// root (each rotation step).
func (c *CA) BundleVersion() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bundleVersion
}

// ActiveRoot is the root that new leaves chain to.
func (c *CA) ActiveRoot() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active.root
}

// Intermediate is the certificate that signs new leaves.
func (c *CA) Intermediate() *x509.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active.inter
}

// AnchorInfo describes one trust anchor for `weft identity`.
type AnchorInfo struct {
	Subject     string
	NotAfter    time.Time
	Fingerprint string // hex SHA-256 of the certificate
	Pin         string // identity.RootPin, what join tokens carry
	Active      bool   // new leaves chain to it
	LiveLeaves  int    // leaves issued under it and not yet expired
}

// Anchors describes the trust anchors, oldest first.
func (c *CA) Anchors() []AnchorInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]AnchorInfo, 0, len(c.roots))
	for _, r := range c.roots {
		out = append(out, AnchorInfo{
			Subject:     r.Subject.String(),
			NotAfter:    r.NotAfter,
			Fingerprint: identity.Fingerprint(r),
			Pin:         identity.RootPin(r),
			Active:      r.Equal(c.active.root),
			LiveLeaves:  c.liveLeavesLocked(r),
		})
	}
	return out
}

func (c *CA) liveLeavesLocked(root *x509.Certificate) int {
	fp := identity.Fingerprint(root)
	now := c.now()
	live := c.leaves[fp][:0]
	for _, t := range c.leaves[fp] {
		if t.After(now) {
			live = append(live, t)
		}
	}
	c.leaves[fp] = live
	return len(live)
}

// Sign issues an X.509-SVID for want from a PKCS#10 CSR and returns the
// chain [leaf, intermediate...] in DER. The CSR must be well signed, by an
// ECDSA (P-256/P-384) or RSA (>= 2048 bits) key, and ask for exactly the URI
// SAN want and nothing else; want must be in the CA's trust domain. The leaf
// lives ttl, but never past the intermediate.
func (c *CA) Sign(csrDER []byte, want spiffeid.ID, ttl time.Duration) ([][]byte, error) {
	if len(csrDER) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrCSRRefused, len(csrDER), MaxCSRSize)
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("sign %s: ttl must be positive, got %s", want, ttl)
	}
	if want.IsZero() || !want.MemberOf(c.td) {
		return nil, fmt.Errorf("%w: identity %q is not in trust domain %q", ErrCSRRefused, want.String(), c.td.Name())
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("%w: for %s: does not parse: %v", ErrCSRRefused, want, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: for %s: bad signature: %v", ErrCSRRefused, want, err)
	}
	if err := checkCSRKey(csr.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: for %s: %v", ErrCSRRefused, want, err)
	}
	switch {
	case len(csr.DNSNames) > 0:
		return nil, fmt.Errorf("%w: for %s: DNS SANs %q not allowed", ErrCSRRefused, want, csr.DNSNames)
	case len(csr.IPAddresses) > 0:
		return nil, fmt.Errorf("%w: for %s: IP SANs %v not allowed", ErrCSRRefused, want, csr.IPAddresses)
	case len(csr.EmailAddresses) > 0:
		return nil, fmt.Errorf("%w: for %s: email SANs not allowed", ErrCSRRefused, want)
	case len(csr.URIs) != 1:
		return nil, fmt.Errorf("%w: for %s: want exactly one URI SAN, got %d", ErrCSRRefused, want, len(csr.URIs))
	case csr.URIs[0].String() != want.String():
		return nil, fmt.Errorf("%w: asks for %q, but the caller is %s", ErrCSRRefused, csr.URIs[0].String(), want)
	}
	serial, err := randSerial()
	if err != nil {
		return nil, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.active
	if c.needsNewIntermediate(g) {
		if err := c.issueIntermediate(g); err != nil {
			return nil, fmt.Errorf("renew intermediate: %w", err)
		}
	}
	now := c.now()
	notAfter := minTime(now.Add(ttl), g.inter.NotAfter)
	if !notAfter.After(now) {
		return nil, fmt.Errorf("sign %s: intermediate %q expired at %s", want, g.inter.Subject.String(), g.inter.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-leafBackdate),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{want.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, g.inter, csr.PublicKey, g.interKey)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", want, err)
	}
	fp := identity.Fingerprint(g.root)
	c.leaves[fp] = append(c.leaves[fp], notAfter)
	c.logLeaf(fp, notAfter)
	return append([][]byte{der}, g.chain...), nil
}

func checkCSRKey(pub any) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("ECDSA curve %s not allowed, use P-256 or P-384", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("RSA key of %d bits is too small, want at least %d", k.N.BitLen(), minRSABits)
		}
	default:
		return fmt.Errorf("key type %T not allowed, use ECDSA", pub)
	}
	return nil
}

const leafLog = "leaves.log"

// logLeaf appends a leaf's root and expiry to leaves.log, so live leaf
// counts survive a restart. Best effort: the count is advisory.
func (c *CA) logLeaf(fp string, notAfter time.Time) {
	f, err := os.OpenFile(filepath.Join(c.dir, leafLog), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		slog.Default().Warn("CA: cannot record issued leaf", "err", err)
		return
	}
	defer f.Close()
	_, _ = fmt.Fprintf(f, "%s %d\n", fp, notAfter.Unix())
}

// loadAux loads the token key, the revocations and the leaf log, and
// compacts the log.
func (c *CA) loadAux() error {
	if err := c.loadTokenKey(); err != nil {
		return err
	}
	if err := c.loadRevoked(); err != nil {
		return err
	}
	p := filepath.Join(c.dir, leafLog)
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("CA leaf log: %w", err)
	}
	inBundle := map[string]bool{}
	for _, r := range c.roots {
		inBundle[identity.Fingerprint(r)] = true
	}
	now := c.now()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fp, ts, ok := strings.Cut(sc.Text(), " ")
		sec, err := strconv.ParseInt(ts, 10, 64)
		if !ok || err != nil || !inBundle[fp] {
			continue
		}
		if t := time.Unix(sec, 0); t.After(now) {
			c.leaves[fp] = append(c.leaves[fp], t)
		}
	}
	f.Close()
	var sb strings.Builder
	fps := make([]string, 0, len(c.leaves))
	for fp := range c.leaves {
		fps = append(fps, fp)
	}
	sort.Strings(fps)
	for _, fp := range fps {
		for _, t := range c.leaves[fp] {
			fmt.Fprintf(&sb, "%s %d\n", fp, t.Unix())
		}
	}
	if err := writeFileAtomic(p, []byte(sb.String()), 0o600); err != nil {
		return fmt.Errorf("CA leaf log: %w", err)
	}
	return nil
}

// Certifier returns an identity.Certifier that signs in process for id with
// leaves of ttl: for the control plane's own SVID and for tests.
func (c *CA) Certifier(id spiffeid.ID, ttl time.Duration) identity.Certifier {
	return localCertifier{c: c, id: id, ttl: ttl}
}

type localCertifier struct {
	c   *CA
	id  spiffeid.ID
	ttl time.Duration
}

func (l localCertifier) Certify(_ context.Context, csrDER []byte) ([][]byte, []*x509.Certificate, error) {
	chain, err := l.c.Sign(csrDER, l.id, l.ttl)
	if err != nil {
		return nil, nil, err
	}
	return chain, l.c.Bundle(), nil
}
