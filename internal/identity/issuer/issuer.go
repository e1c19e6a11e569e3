package issuer

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/model"
)

// DefaultLeafTTL is how long a workload certificate lives.
const DefaultLeafTTL = 24 * time.Hour

// Server is the Identity gRPC service.
type Server struct {
	meshv1.UnimplementedIdentityServer
	ca      *ca.CA
	leafTTL time.Duration
	log     *slog.Logger
	now     func() time.Time

	// Observe, when set before serving, is told of the outcome of every
	// Certify call (the control plane's metrics); it must not block.
	Observe func(Auth, Outcome)
	// ReviewToken, when set before serving, authenticates a credential that
	// is not a join token: a Kubernetes service account token (audience
	// weft), naming the identity it proves. Kubernetes mode sets it.
	ReviewToken func(ctx context.Context, token string) (namespace, serviceAccount string, err error)

	mu sync.Mutex
	// latest holds the newest certificate issued to each identity since
	// the control plane started.
	latest map[spiffeid.ID]IssuedLeaf
}

// Auth is how a Certify caller authenticated, or tried to. It has only
// the values below, so it can be a metric label.
type Auth string

const (
	// AuthJoinToken: a join token, a workload's first certificate (or one
	// after its SVID expired).
	AuthJoinToken Auth = "join_token"
	// AuthSVID: the caller's current SVID, a renewal.
	AuthSVID Auth = "svid"
	// AuthServiceAccountToken: a Kubernetes service account token, which
	// the API server vouches for (a TokenReview).
	AuthServiceAccountToken Auth = "service_account_token"
	// AuthNone: neither a certificate nor a token.
	AuthNone Auth = "none"
)

// Outcome is what a Certify call came to.
type Outcome string

const (
	// Issued: a certificate was signed.
	Issued Outcome = "issued"
	// Refused: the caller did not authenticate, or its CSR was not
	// acceptable.
	Refused Outcome = "refused"
	// Failed: the CA could not sign an acceptable request.
	Failed Outcome = "error"
)

// IssuedLeaf is the newest certificate issued to one identity.
type IssuedLeaf struct {
	ID       spiffeid.ID
	Issued   time.Time
	NotAfter time.Time
}

var _ meshv1.IdentityServer = (*Server)(nil)

// New returns the service signing with c; leafTTL 0 means DefaultLeafTTL.
func New(c *ca.CA, leafTTL time.Duration, logger *slog.Logger) *Server {
	if leafTTL <= 0 {
		leafTTL = DefaultLeafTTL
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &Server{ca: c, leafTTL: leafTTL, log: logger, now: time.Now, latest: map[spiffeid.ID]IssuedLeaf{}}
}

// Latest returns the newest certificate issued to each identity since the
// control plane started, sorted by identity.
func (s *Server) Latest() []IssuedLeaf {
	s.mu.Lock()
	out := slices.Collect(maps.Values(s.latest))
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b IssuedLeaf) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

// LeafTTL is the lifetime of the certificates it signs.
func (s *Server) LeafTTL() time.Duration { return s.leafTTL }

// Certify signs the CSR for the caller's identity.
func (s *Server) Certify(ctx context.Context, req *meshv1.CertifyRequest) (*meshv1.CertifyResponse, error) {
	if len(req.GetCsr()) > ca.MaxCSRSize {
		s.observe(presented(ctx, req.GetToken()), Refused)
		return nil, status.Errorf(codes.InvalidArgument, "csr: larger than %d bytes", ca.MaxCSRSize)
	}
	id, auth, via, err := s.caller(ctx, req.GetToken())
	if err != nil {
		s.observe(auth, Refused)
		s.log.Warn("certificate refused: caller not authenticated", "peer", peerAddr(ctx), "err", err)
		return nil, status.Errorf(codes.Unauthenticated, "certify: %v", err)
	}
	if id == identity.ControlPlaneID(s.ca.TrustDomain()) {
		// The control plane certifies itself in its own process; its
		// identity may tap every proxy, so no caller gets it over the API,
		// whatever token it holds.
		s.observe(auth, Refused)
		s.log.Warn("certificate refused: the control plane's identity", "peer", peerAddr(ctx), "via", via)
		return nil, status.Errorf(codes.PermissionDenied, "certify %s: the control plane's identity is not issued to callers", id)
	}
	chain, err := s.ca.Sign(req.GetCsr(), id, s.leafTTL)
	if err != nil {
		s.log.Warn("certificate refused", "spiffe_id", id.String(), "via", via, "err", err)
		if errors.Is(err, ca.ErrCSRRefused) {
			s.observe(auth, Refused)
			return nil, status.Errorf(codes.PermissionDenied, "certify %s: %v", id, err)
		}
		s.observe(auth, Failed)
		return nil, status.Errorf(codes.Internal, "certify %s: %v", id, err)
	}
	s.observe(auth, Issued)
	s.log.Info("certificate issued", "spiffe_id", id.String(), "via", via, "ttl", s.leafTTL)
	if leaf, err := x509.ParseCertificate(chain[0]); err == nil {
		s.mu.Lock()
		s.latest[id] = IssuedLeaf{ID: id, Issued: leaf.NotBefore, NotAfter: leaf.NotAfter}
		s.mu.Unlock()
	}
	roots, version := BundleDER(s.ca)
	return &meshv1.CertifyResponse{Chain: chain, TrustBundle: roots, BundleVersion: version}, nil
}

func (s *Server) observe(a Auth, o Outcome) {
	if s.Observe != nil {
		s.Observe(a, o)
	}
}

// caller is who the request comes from: the SVID on the connection, or
// else the identity a join token is bound to. It says how the caller
// authenticated (or, refused, what it tried last) and, for the log, with
// what.
func (s *Server) caller(ctx context.Context, token string) (spiffeid.ID, Auth, string, error) {
	if id, err := PeerSVID(ctx, s.ca, s.now()); err == nil {
		return id, AuthSVID, "svid", nil
	} else if token == "" {
		return spiffeid.ID{}, presented(ctx, token), "", fmt.Errorf("no valid SVID (%v) and no join token", err)
	}
	if !identity.IsJoinToken(token) && s.ReviewToken != nil {
		ns, sa, err := s.ReviewToken(ctx, token)
		if err != nil {
			return spiffeid.ID{}, AuthServiceAccountToken, "", fmt.Errorf("service account token: %w", err)
		}
		id, err := identity.WorkloadID(s.ca.TrustDomain(), ns, sa)
		if err != nil {
			return spiffeid.ID{}, AuthServiceAccountToken, "", fmt.Errorf("service account token: %w", err)
		}
		return id, AuthServiceAccountToken, "service account token", nil
	}
	claims, err := s.ca.VerifyToken(token)
	if err != nil {
		return spiffeid.ID{}, AuthJoinToken, "", fmt.Errorf("join token: %w", err)
	}
	id, err := identity.WorkloadID(s.ca.TrustDomain(), claims.Namespace, claims.ServiceAccount)
	if err != nil {
		return spiffeid.ID{}, AuthJoinToken, "", fmt.Errorf("join token: %w", err)
	}
	return id, AuthJoinToken, "token " + claims.ID, nil
}

// presented is the credential a caller offers, before it is checked: a
// join token, else a client certificate (an SVID to renew), else none.
// A proxy sends its token only while it holds no unexpired SVID, so the
// token is what it means to authenticate with.
func presented(ctx context.Context, token string) Auth {
	switch {
	case identity.IsJoinToken(token):
		return AuthJoinToken
	case token != "":
		return AuthServiceAccountToken
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
			return AuthSVID
		}
	}
	return AuthNone
}

// BundleDER is the CA's trust bundle as DER, with its version.
func BundleDER(c *ca.CA) ([][]byte, uint64) {
	roots := c.Bundle()
	der := make([][]byte, len(roots))
	for i, r := range roots {
		der[i] = r.Raw
	}
	return der, c.BundleVersion()
}

// PeerSVID verifies the client certificate of the call's TLS connection
// as an SVID of c's trust domain and returns its ID.
func PeerSVID(ctx context.Context, c *ca.CA, now time.Time) (spiffeid.ID, error) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return spiffeid.ID{}, errors.New("no peer")
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return spiffeid.ID{}, errors.New("not a TLS connection")
	}
	return identity.Verify(info.State.PeerCertificates, c.Bundle(), c.TrustDomain(), now)
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok {
		return p.Addr.String()
	}
	return ""
}

type callerKey struct{}

// Caller is the verified SPIFFE ID the interceptors put in the context.
func Caller(ctx context.Context) (spiffeid.ID, bool) {
	id, ok := ctx.Value(callerKey{}).(spiffeid.ID)
	return id, ok
}

// certifyMethod may be called without an SVID: it is how a workload gets
// its first one.
var certifyMethod = meshv1.Identity_Certify_FullMethodName

// RequireSVID returns interceptors that refuse every call but Certify
// unless the client presents a valid SVID, and put its ID in the context.
func RequireSVID(c *ca.CA, logger *slog.Logger) []grpc.ServerOption {
	check := func(ctx context.Context, method string) (context.Context, error) {
		if method == certifyMethod {
			return ctx, nil
		}
		id, err := PeerSVID(ctx, c, time.Now())
		if err != nil {
			logger.Warn("control-plane call refused: no valid SVID", "method", method, "peer", peerAddr(ctx), "err", err)
			return nil, status.Errorf(codes.Unauthenticated, "%s: a valid workload certificate is required: %v", method, err)
		}
		return context.WithValue(ctx, callerKey{}, id), nil
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			ctx, err := check(ctx, info.FullMethod)
			if err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			ctx, err := check(ss.Context(), info.FullMethod)
			if err != nil {
				return err
			}
			return h(srv, &withContext{ServerStream: ss, ctx: ctx})
		}),
	}
}

type withContext struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *withContext) Context() context.Context { return w.ctx }

// MayActAs checks that the caller's SVID is the identity workload ref runs
// as: its namespace always, and its service account once w is known.
func MayActAs(ctx context.Context, ref model.Ref, w *model.Workload) error {
	id, ok := Caller(ctx)
	if !ok {
		return errors.New("caller not authenticated")
	}
	ns, sa, err := identity.ParseWorkloadID(id)
	if err != nil {
		return err
	}
	if ns != ref.Namespace {
		return fmt.Errorf("caller %s is not of namespace %s", id, ref.Namespace)
	}
	if w != nil && w.Identity().Name != sa {
		return fmt.Errorf("caller %s is not service account %s, which workload %s runs as", id, w.Identity().Name, ref)
	}
	return nil
}
