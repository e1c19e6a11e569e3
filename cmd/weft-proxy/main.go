// Command weft-proxy is weft's data plane: the sidecar beside each
// workload. It only wires parts together; see internal/proxy.
//
// `weft-proxy init` installs the iptables rules of transparent
// interception in the current network namespace (internal/proxy/iptables);
// a proxy started with --transparent then takes what they redirect.
//
// It must stay small: no Kubernetes packages, no control-plane halves of
// the API (TestImports checks).
package main

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/admin"
	"github.com/weftmesh/weft/internal/proxy/control"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// deregisterTimeout bounds the goodbye to the control plane on shutdown:
// an unreachable control plane must not hold up draining.
const deregisterTimeout = 3 * time.Second

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "init" {
		return runInit(args[1:], os.Stdout, os.Stderr)
	}
	cfg, err := parseFlags(args, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		return 2
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "weft-proxy:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	trust, src, err := startIdentity(ctx, cfg, logger)
	if err != nil {
		logger.Error("identity", "error", err)
		return 1
	}

	tracer, err := newTracer(cfg, logger)
	if err != nil {
		logger.Error("tracing", "error", err)
		return 2
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), traceFlushTimeout)
		defer cancel()
		if err := tracer.Shutdown(sctx); err != nil {
			logger.Warn("spans not flushed", "error", err)
		}
	}()

	var p *proxy.Proxy
	p = proxy.New(proxy.Options{
		Logger:        logger,
		AppAddress:    cfg.appAddress,
		DrainTimeout:  cfg.drainTimeout,
		DetectTimeout: cfg.detectTimeout,
		Balancer:      cfg.balancer,
		TrustDomain:   cfg.trustDomain,
		Tracer:        tracer,
		// Each peer proxy must prove the identity the control plane says
		// its workload has.
		Dialer: src.Dialer(func(addr string) (spiffeid.ID, bool) {
			sa, ok := p.PeerAccount(addr)
			if !ok {
				return spiffeid.ID{}, false
			}
			id, err := identity.WorkloadID(src.ID().TrustDomain(), sa.Namespace, sa.Name)
			return id, err == nil
		}),
		InboundTLS:  src.ServerTLSConfig(nil),
		Transparent: cfg.transparent,
	})

	// Admin first: /live answers, and /ready says 503, while the proxy
	// waits for its certificate and config.
	adminLn, err := net.Listen("tcp", cfg.admin)
	if err != nil {
		logger.Error("admin listener", "addr", cfg.admin, "error", err)
		return 1
	}
	adminSrv := &http.Server{Handler: admin.NewHandler(p, admin.Options{Logger: logger, AppProbes: cfg.appProbes, AppAddress: cfg.appProbeAddress}), ReadHeaderTimeout: 5 * time.Second}
	go adminSrv.Serve(adminLn)
	logger.Info("admin listening", "addr", adminLn.Addr().String())

	select {
	case <-src.Ready():
	case <-ctx.Done():
		return 0
	}
	conn := control.NewConn(cfg.controlPlane, trust.Credentials(), src.Leaf)
	defer conn.Close()

	code := 0
	var lease *control.Lease
	keepErr := make(chan error, 1)
	if cfg.registered != nil {
		// Listen before joining the mesh: peers pick a registered endpoint
		// at once, and one whose proxy refuses connections is shunned by
		// their balancers for a while.
		if err := p.Apply(&model.ProxyConfig{Workload: cfg.registered}); err != nil {
			logger.Error("listeners for the workload to register", "error", err)
			return 1
		}
		lease, err = control.Register(ctx, conn, cfg.registered, cfg.leaseTTL, logger)
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			logger.Error("registration failed", "error", err)
			return 1
		}
		go func() { keepErr <- lease.Keep(ctx) }()
	}

	client := control.NewClient(conn, cfg.workload, logger)
	client.OnBundle = trust.OnBundle
	// Intercepting, the proxy routes by cluster IP to any service: it
	// needs them all, not just its outbound list.
	client.Everything = cfg.transparent != nil
	followErr := make(chan error, 1)
	go func() { followErr <- control.Follow(ctx, client, p, logger) }()

	followed := false
	select {
	case <-ctx.Done():
		logger.Info("signal received; shutting down")
	case err := <-followErr:
		followed = true
		logger.Error("discovery failed for good", "error", err)
		code = 1
	case err := <-keepErr:
		if err != nil {
			logger.Error("lease lost for good", "error", err)
			code = 1
		}
	}
	stop()
	if !followed {
		<-followErr // Follow returns once ctx ends; no Apply may race Shutdown
	}

	if lease != nil {
		// Leave the mesh before draining, so peers stop picking us.
		dctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
		if err := lease.Deregister(dctx); err != nil {
			logger.Warn("deregistration failed; the lease will lapse", "error", err)
		}
		cancel()
	}
	if err := p.Shutdown(context.Background()); err != nil {
		logger.Warn("shutdown", "error", err)
	}
	actx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	adminSrv.Shutdown(actx)
	return code
}

// traceFlushTimeout bounds the export of the last spans on shutdown.
const traceFlushTimeout = 3 * time.Second

// newTracer makes the proxy's tracer, or nil when no collector is set.
func newTracer(cfg *config, logger *slog.Logger) (*trace.Tracer, error) {
	if cfg.traceCollector == "" {
		return nil, nil
	}
	protocol := trace.ProtocolGRPC
	if cfg.traceProtocol == "http" {
		protocol = trace.ProtocolHTTP
	}
	t, err := trace.New(trace.Config{
		Endpoint:    cfg.traceCollector,
		Protocol:    protocol,
		SampleRatio: cfg.traceRatio,
		ServiceName: cfg.workload.String(),
		Resource:    map[string]string{"weft.workload": cfg.workload.String(), "k8s.namespace.name": cfg.workload.Namespace},
		Logger:      logger.With("component", "trace"),
	})
	if err != nil {
		return nil, fmt.Errorf("--trace-collector %q: %w", cfg.traceCollector, err)
	}
	logger.Info("tracing", "collector", cfg.traceCollector, "protocol", cfg.traceProtocol, "sample_ratio", cfg.traceRatio)
	return t, nil
}

// startIdentity reads the join token and starts the Source that holds the
// proxy's SVID, renewing it until ctx ends. The private key is made in
// this process and stays in it.
func startIdentity(ctx context.Context, cfg *config, logger *slog.Logger) (*control.Trust, *identity.Source, error) {
	token, err := joinToken(cfg.tokenFile)
	if err != nil {
		return nil, nil, err
	}
	td := spiffeid.RequireTrustDomainFromString(cfg.trustDomain)
	trust, id, err := newTrust(td, token, cfg.caFile)
	if err != nil {
		return nil, nil, err
	}
	src := identity.NewSource(id, control.NewCertifier(cfg.controlPlane, trust), logger)
	trust.Bind(src)
	go func() {
		if err := src.Run(ctx); err != nil {
			logger.Error("certificate renewal stopped", "error", err)
		}
	}()
	logger.Info("identity", "spiffe_id", id.String())
	return trust, src, nil
}

// newTrust makes the proxy's trust in the control plane, and the identity
// it asks for: a join token names both; a Kubernetes service account
// token names the identity (the control plane checks it with a
// TokenReview) and the CA comes from caFile.
func newTrust(td spiffeid.TrustDomain, token, caFile string) (*control.Trust, spiffeid.ID, error) {
	if identity.IsJoinToken(token) {
		trust, claims, err := control.NewTrust(td, token)
		if err != nil {
			return nil, spiffeid.ID{}, err
		}
		id, err := identity.WorkloadID(td, claims.Namespace, claims.ServiceAccount)
		if err != nil {
			return nil, spiffeid.ID{}, fmt.Errorf("join token: %w", err)
		}
		return trust, id, nil
	}
	if caFile == "" {
		return nil, spiffeid.ID{}, errors.New("the token is no join token; a service account token needs --ca-file, the control plane's CA")
	}
	ns, sa, err := serviceAccountClaims(token)
	if err != nil {
		return nil, spiffeid.ID{}, err
	}
	id, err := identity.WorkloadID(td, ns, sa)
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("service account token: %w", err)
	}
	pemData, err := os.ReadFile(caFile)
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("--ca-file: %w", err)
	}
	var roots []*x509.Certificate
	for block, rest := pem.Decode(pemData); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, spiffeid.ID{}, fmt.Errorf("--ca-file %s: %w", caFile, err)
		}
		roots = append(roots, cert)
	}
	trust, err := control.NewTrustFromRoots(td, roots, token)
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("--ca-file %s: %w", caFile, err)
	}
	return trust, id, nil
}

// serviceAccountClaims reads whose a Kubernetes service account token
// says it is (its sub claim, system:serviceaccount:NAMESPACE:NAME),
// without verifying it: the proxy only asks for that identity, and the
// control plane gives it only if the API server vouches for the token.
func serviceAccountClaims(token string) (namespace, name string, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", "", errors.New("service account token: not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", "", fmt.Errorf("service account token: payload: %w", err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return "", "", fmt.Errorf("service account token: payload: %w", err)
	}
	rest, ok := strings.CutPrefix(claims.Sub, "system:serviceaccount:")
	namespace, name, ok2 := strings.Cut(rest, ":")
	if !ok || !ok2 || namespace == "" || name == "" {
		return "", "", fmt.Errorf("service account token: subject %q is not a service account", claims.Sub)
	}
	return namespace, name, nil
}

// joinToken reads the token from file, or from $WEFT_JOIN_TOKEN when file
// is "".
func joinToken(file string) (string, error) {
	if file == "" {
		tok := strings.TrimSpace(os.Getenv("WEFT_JOIN_TOKEN"))
		if tok == "" {
			return "", errors.New("no join token: set WEFT_JOIN_TOKEN or --token-file (weft identity token mints one)")
		}
		return tok, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: the file is empty", file)
	}
	return tok, nil
}

func newLogger(level, format string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "text" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
}
