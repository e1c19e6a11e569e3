package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/discovery"
	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/identity/issuer"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/registry"
	"github.com/weftmesh/weft/internal/source/files"
	"github.com/weftmesh/weft/internal/source/kube"
	"github.com/weftmesh/weft/internal/stats"
)

// Options configure a control plane.
type Options struct {
	// ManifestDir is universal mode's watched manifest directory; "" runs
	// with registrations only.
	ManifestDir string
	// StateDir keeps what must survive a restart (registrations). "" keeps
	// nothing.
	StateDir string
	// GRPCAddr serves discovery and registration; AdminAddr the admin API.
	GRPCAddr  string
	AdminAddr string
	Logger    *slog.Logger
	// Resync overrides the manifest directory's full re-read interval.
	Resync time.Duration
	// TrustDomain of the mesh's SPIFFE IDs; "" means DefaultTrustDomain.
	TrustDomain string
	// CADir, when set, holds an operator's CA in the layout cert-manager
	// writes (tls.crt, tls.key, ca.crt); otherwise the control plane makes
	// its own in StateDir.
	CADir string
	// LeafTTL is the lifetime of workload certificates; 0 means 24h.
	LeafTTL time.Duration
	// MTLSMode is the mesh-wide mTLS mode of workloads whose services set
	// none: strict (the default) or permissive.
	MTLSMode string
	// StatsInterval is how often the proxies' metrics are scraped for
	// weft stat; 0 means every 5s.
	StatsInterval time.Duration
	// Kube, when set, is the API server Kubernetes mode reads the mesh
	// from (see internal/source/kube).
	Kube *rest.Config
	// Webhook, when set (with Kube), serves sidecar injection.
	Webhook *WebhookOptions
	// Namespace is the control plane's own in Kubernetes mode, where its
	// CA Secret and its Lease are; required with either.
	Namespace string
	// CASecret, with Kube, names the Secret in Namespace that holds the
	// mesh's CA, shared by every replica (see loadCASecret); "" keeps the
	// CA in StateDir. It excludes CADir.
	CASecret string
	// LeaderElection, with Kube, has the replicas elect which one runs
	// the single-writer tasks (leaderTasks); nil runs them here, as the
	// only replica.
	LeaderElection *LeaderElection
}

// DefaultTrustDomain is the trust domain of a mesh that names none.
const DefaultTrustDomain = "weft.local"

// ControlPlane is a running control plane's parts.
type ControlPlane struct {
	opts      Options
	store     *model.Store
	files     *files.Source
	kube      *kube.Source
	registry  *registry.Registry
	discovery *discovery.Server
	grpcLis   net.Listener
	adminLis  net.Listener
	// webhookLis and webhookCerts serve injection, when it is on.
	webhookLis   net.Listener
	webhookCerts *certReloader
	loaded       chan struct{}

	ca         *ca.CA
	issuer     *issuer.Server
	self       *identity.Source
	adminToken string

	// client is Kubernetes mode's; bundles runs as a leader task.
	client  kubernetes.Interface
	bundles *bundleWriter
	// caSecret, when the CA is kept in a Secret, keeps them in step.
	caSecret *caSecret
	// leading is whether this replica runs the leader tasks; leader is
	// the Lease's holder as last seen (a string).
	leading atomic.Bool
	leader  atomic.Value

	metrics *metrics
	stats   *stats.Scraper
}

// New is NewContext with no deadline.
func New(opts Options) (*ControlPlane, error) { return NewContext(context.Background(), opts) }

// NewContext builds the parts and binds the listeners, so Addrs is known
// before Run; nothing is served until Run. ctx bounds what it asks of the
// API server (the CA Secret).
func NewContext(ctx context.Context, opts Options) (*ControlPlane, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StateDir == "" {
		return nil, errors.New("control plane: a state directory is required (it keeps the CA and registrations)")
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	mtls, err := model.ParseMTLSMode(opts.MTLSMode)
	if err != nil {
		return nil, fmt.Errorf("mTLS mode: %w", err)
	}
	if err := opts.checkKubernetes(); err != nil {
		return nil, err
	}
	cp := &ControlPlane{opts: opts, store: model.NewStore(model.WithMeshMTLS(mtls)), loaded: make(chan struct{})}
	if opts.Kube != nil {
		if cp.client, err = kubernetes.NewForConfig(opts.Kube); err != nil {
			return nil, fmt.Errorf("kubernetes client: %w", err)
		}
	}
	if err := cp.newIdentity(ctx); err != nil {
		return nil, err
	}
	cp.metrics = newMetrics(cp.store, cp.ca)
	cp.issuer.Observe = cp.metrics.certified
	if opts.ManifestDir != "" {
		cp.files, err = files.New(files.Options{Dir: opts.ManifestDir, Store: cp.store, Logger: opts.Logger.With("source", "files"), Resync: opts.Resync,
			OnSync: cp.metrics.synced})
		if err != nil {
			return nil, err
		}
	}
	if opts.Kube != nil {
		if cp.kube, err = newKubeSource(opts.Kube, cp.client, cp.store, opts.Logger.With("source", "kube")); err != nil {
			return nil, err
		}
		cp.issuer.ReviewToken = reviewToken(cp.client)
		cp.bundles = &bundleWriter{client: cp.client, ca: cp.ca, mesh: cp.kube, log: opts.Logger.With("component", "ca-bundle"),
			poll: time.Second, resync: time.Minute}
	}
	cp.registry, err = registry.New(cp.store, registry.Options{
		Logger:    opts.Logger.With("component", "registry"),
		StatePath: filepath.Join(opts.StateDir, "registrations.json"),
		Authorize: func(ctx context.Context, w *model.Workload) error { return issuer.MayActAs(ctx, w.Ref, w) },
	})
	if err != nil {
		return nil, err
	}
	cp.discovery = discovery.NewServer(cp.store, opts.Logger.With("component", "discovery"))
	cp.discovery.Authorize = issuer.MayActAs
	cp.discovery.Bundle = func() ([][]byte, uint64) { return issuer.BundleDER(cp.ca) }
	cp.discovery.Observer = discoveryObserver{cp.metrics}
	cp.newStats()
	if opts.Webhook != nil {
		if cp.kube == nil {
			return nil, errors.New("control plane: the injection webhook needs Kubernetes mode")
		}
		opts.Webhook.Inject = opts.Webhook.Inject.WithDefaults()
		if err := opts.Webhook.Inject.Validate(); err != nil {
			return nil, fmt.Errorf("injection webhook: %w", err)
		}
		if cp.webhookCerts, err = newCertReloader(opts.Webhook.CertDir); err != nil {
			return nil, err
		}
		cp.opts.Webhook = opts.Webhook
	}
	if cp.grpcLis, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
		return nil, fmt.Errorf("control plane gRPC listener: %w", err)
	}
	if cp.adminLis, err = net.Listen("tcp", opts.AdminAddr); err != nil {
		cp.grpcLis.Close()
		return nil, fmt.Errorf("control plane admin listener: %w", err)
	}
	if opts.Webhook != nil {
		if cp.webhookLis, err = net.Listen("tcp", opts.Webhook.Addr); err != nil {
			cp.grpcLis.Close()
			cp.adminLis.Close()
			return nil, fmt.Errorf("injection webhook listener: %w", err)
		}
	}
	return cp, nil
}

// checkKubernetes refuses Kubernetes mode's settings without it, or
// without the namespace they live in.
func (o Options) checkKubernetes() error {
	if o.Kube == nil {
		switch {
		case o.CASecret != "":
			return errors.New("control plane: a CA Secret needs Kubernetes mode")
		case o.LeaderElection != nil:
			return errors.New("control plane: leader election needs Kubernetes mode")
		}
		return nil
	}
	if (o.CASecret != "" || o.LeaderElection != nil) && o.Namespace == "" {
		return errors.New("control plane: a CA Secret or leader election needs the control plane's namespace")
	}
	if o.CASecret != "" && o.CADir != "" {
		return errors.New("control plane: the CA comes from a Secret or from a directory, not both")
	}
	if le := o.LeaderElection; le != nil && (le.Lease == "" || le.Identity == "") {
		return errors.New("control plane: leader election needs a Lease and this replica's identity")
	}
	return nil
}

// newKubeSource reads the API server cfg names.
func newKubeSource(cfg *rest.Config, client kubernetes.Interface, store *model.Store, log *slog.Logger) (*kube.Source, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return kube.New(kube.Options{Client: client, Dynamic: dyn, Store: store, Logger: log})
}

// WebhookAddr is where the injection webhook is served; "" when it is not.
func (cp *ControlPlane) WebhookAddr() string {
	if cp.webhookLis == nil {
		return ""
	}
	return cp.webhookLis.Addr().String()
}

// GRPCAddr is where proxies connect.
func (cp *ControlPlane) GRPCAddr() string { return cp.grpcLis.Addr().String() }

// AdminAddr is where the admin API is served.
func (cp *ControlPlane) AdminAddr() string { return cp.adminLis.Addr().String() }

// Store is the model the control plane serves.
func (cp *ControlPlane) Store() *model.Store { return cp.store }

// Loaded is closed once Run has read every source in full.
func (cp *ControlPlane) Loaded() <-chan struct{} { return cp.loaded }

// Run loads the sources, then serves until ctx ends. Discovery is served
// only after the first full read of every source, so a restarting control
// plane never tells proxies that services are gone when it simply has not
// read them yet.
func (cp *ControlPlane) Run(ctx context.Context) error {
	log := cp.opts.Logger
	if cp.files != nil {
		cp.files.Sync()
		st := cp.files.Status()
		log.Info("manifests loaded", "dir", st.Dir, "files", st.Files, "objects", st.Objects, "problems", len(st.Problems))
	}
	kubeErr := make(chan error, 1)
	if cp.kube != nil {
		go func() { kubeErr <- cp.kube.Run(ctx) }()
		select {
		case <-cp.kube.Synced():
			log.Info("Kubernetes objects loaded", "objects", cp.kube.Status().Objects, "problems", len(cp.kube.Status().Problems))
		case err := <-kubeErr:
			return fmt.Errorf("kubernetes source: %w", err)
		case <-ctx.Done():
			return nil
		}
	}
	close(cp.loaded)
	selfCtx, stopSelf := context.WithCancel(ctx)
	defer stopSelf()
	go cp.self.Run(selfCtx)
	select {
	case <-cp.self.Ready():
	case <-ctx.Done():
		return nil
	}
	// The metrics' interceptor goes before the identity ones, so it wraps
	// them and sees the streams they refuse.
	gs := grpc.NewServer(append(append(discovery.ServerOptions(),
		grpc.Creds(credentials.NewTLS(cp.serverTLS())), cp.metrics.refusedStreams()),
		issuer.RequireSVID(cp.ca, log.With("component", "identity"))...)...)
	meshv1.RegisterDiscoveryServer(gs, cp.discovery)
	meshv1.RegisterRegistrationServer(gs, cp.registry)
	meshv1.RegisterIdentityServer(gs, cp.issuer)
	admin := &http.Server{Handler: cp.adminHandler(), ReadHeaderTimeout: 10 * time.Second}

	g, ctx := errgroup.WithContext(ctx)
	if cp.files != nil {
		g.Go(func() error { return cp.files.Run(ctx) })
	}
	g.Go(func() error { return cp.registry.Run(ctx) })
	if cp.kube != nil {
		g.Go(func() error {
			select {
			case err := <-kubeErr:
				if err != nil {
					return fmt.Errorf("kubernetes source: %w", err)
				}
			case <-ctx.Done():
			}
			return nil
		})
	}
	g.Go(func() error { return cp.stats.Run(ctx) })
	g.Go(func() error { return cp.lead(ctx) })
	if cp.caSecret != nil {
		g.Go(func() error { return cp.caSecret.run(ctx) })
	}
	g.Go(func() error {
		if err := gs.Serve(cp.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("gRPC server: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		if err := admin.Serve(cp.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	if cp.webhookLis != nil {
		webhook := cp.webhookServer(cp.webhookCerts)
		g.Go(func() error {
			if err := webhook.ServeTLS(cp.webhookLis, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("injection webhook: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-ctx.Done()
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := webhook.Shutdown(shutdownCtx); err != nil {
				_ = webhook.Close()
			}
			return nil
		})
	}
	log.Info("control plane serving", "grpc", cp.GRPCAddr(), "admin", cp.AdminAddr())
	g.Go(func() error {
		<-ctx.Done()
		// Discovery streams never end by themselves: end them (proxies
		// reconnect elsewhere or later), then let unary calls finish.
		cp.discovery.Close()
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			gs.Stop()
		}
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := admin.Shutdown(shutdownCtx); errors.Is(err, context.DeadlineExceeded) {
			// Long reads (a tap, a dashboard's event stream) and connections
			// opened but never used must not hold the control plane up.
			_ = admin.Close()
		} else if err != nil {
			return fmt.Errorf("admin server shutdown: %w", err)
		}
		return nil
	})
	return g.Wait()
}
