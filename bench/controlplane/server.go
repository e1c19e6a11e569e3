package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/discovery"
	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/identity/issuer"
	"github.com/weftmesh/weft/internal/model"
)

// server is the part of the control plane a proxy talks to, assembled as
// internal/controlplane assembles it (its Run): the model store, the CA
// and the Identity service, the Discovery server with the same
// authorization of each stream, and one gRPC server with the same
// keepalive policy, TLS and SVID interceptors. Left out, because no
// proxy's config waits on them: the admin HTTP API, Prometheus metrics,
// the stats scraper, the registration service (the mesh is loaded as a
// source loads it) and the manifest directory (the store is loaded
// directly, in the batches a source would apply). Assembling the parts
// also keeps Kubernetes' client out of the measured process.
type server struct {
	store  *model.Store
	ca     *ca.CA
	td     spiffeid.TrustDomain
	issuer *issuer.Server
	self   *identity.Source
	disc   *discovery.Server
	lis    net.Listener
	log    *slog.Logger
}

func newServer(stateDir string, logger *slog.Logger) (*server, error) {
	td := spiffeid.RequireTrustDomainFromString("weft.local")
	authority, err := ca.LoadOrCreate(filepath.Join(stateDir, "ca"), td, time.Now)
	if err != nil {
		return nil, fmt.Errorf("certificate authority: %w", err)
	}
	s := &server{store: model.NewStore(), ca: authority, td: td, log: logger}
	s.issuer = issuer.New(authority, 0, logger)
	selfID := identity.ControlPlaneID(td)
	s.self = identity.NewSource(selfID, authority.Certifier(selfID, s.issuer.LeafTTL()), logger)
	s.disc = discovery.NewServer(s.store, logger)
	s.disc.Authorize = issuer.MayActAs
	s.disc.Bundle = func() ([][]byte, uint64) { return issuer.BundleDER(authority) }
	if s.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("control plane listener: %w", err)
	}
	return s, nil
}

func (s *server) addr() string { return s.lis.Addr().String() }

// run serves until ctx ends.
func (s *server) run(ctx context.Context) error {
	selfDone := make(chan struct{})
	go func() {
		defer close(selfDone)
		_ = s.self.Run(ctx)
	}()
	defer func() { <-selfDone }()
	select {
	case <-s.self.Ready():
	case <-ctx.Done():
		return nil
	}
	gs := grpc.NewServer(append(append(discovery.ServerOptions(), grpc.Creds(credentials.NewTLS(s.serverTLS()))),
		issuer.RequireSVID(s.ca, s.log)...)...)
	meshv1.RegisterDiscoveryServer(gs, s.disc)
	meshv1.RegisterIdentityServer(gs, s.issuer)
	go func() {
		<-ctx.Done()
		s.disc.Close()
		gs.Stop()
	}()
	if err := gs.Serve(s.lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("gRPC server: %w", err)
	}
	return nil
}

// serverTLS is the control plane's listener TLS (see
// internal/controlplane's serverTLS): its SVID with the active root
// after the chain, for the pin of a new proxy's join token.
func (s *server) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{identity.ALPN},
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			cert, err := s.self.Certificate()
			if err != nil {
				return nil, err
			}
			withRoot := *cert
			withRoot.Certificate = append(append([][]byte(nil), cert.Certificate...), s.ca.ActiveRoot().Raw)
			return &withRoot, nil
		},
	}
}

// joinToken mints a join token for the identity namespace/serviceAccount.
func (s *server) joinToken(namespace, serviceAccount string) (string, error) {
	tok, err := s.ca.MintToken(identity.TokenClaims{Namespace: namespace, ServiceAccount: serviceAccount, Expires: time.Now().Add(30 * time.Minute)})
	if err != nil {
		return "", fmt.Errorf("join token for %s/%s: %w", namespace, serviceAccount, err)
	}
	return tok, nil
}
