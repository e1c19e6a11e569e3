package cli

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/install"
)

func newControlCommand(logs *logFlags) *cobra.Command {
	opts := controlplane.Options{}
	var kubeMode bool
	var kubeconfig, lease string
	webhook := controlplane.WebhookOptions{}
	var failurePolicy string
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane",
		Long: `Run the control plane: it watches a directory of manifests (universal
mode) or, with --kubernetes, a Kubernetes API server, accepts workload
registrations, and streams each proxy the part of the mesh it needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch p := admissionregistrationv1.FailurePolicyType(failurePolicy); p {
			case admissionregistrationv1.Fail, admissionregistrationv1.Ignore:
				webhook.FailurePolicy = p
			default:
				return fmt.Errorf("--webhook-failure-policy %q: want Fail or Ignore", failurePolicy)
			}
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opts.Logger = logger
			if opts.CASecret != "" && opts.CADir != "" {
				return errors.New("--ca-secret and --ca-dir: the CA comes from one or the other")
			}
			if kubeMode {
				if opts.Kube, err = kubeConfig(kubeconfig); err != nil {
					return err
				}
				if opts.Namespace == "" {
					opts.Namespace = ownNamespace()
				}
				if lease != "" {
					opts.LeaderElection = &controlplane.LeaderElection{Lease: lease, Identity: replicaName()}
				}
			} else {
				for _, name := range []string{"kubeconfig", "namespace", "ca-secret", "leader-election-lease"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s needs --kubernetes", name)
					}
				}
			}
			if webhook.Addr != "" {
				if !kubeMode {
					return errors.New("--webhook-addr needs --kubernetes")
				}
				if webhook.CertDir == "" {
					return errors.New("--webhook-addr needs --webhook-cert-dir")
				}
				webhook.Inject.TrustDomain = opts.TrustDomain
				opts.Webhook = &webhook
			}
			cp, err := controlplane.NewContext(cmd.Context(), opts)
			if err != nil {
				return err
			}
			return cp.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.ManifestDir, "manifests", "f", "", "directory of manifests to watch")
	f.StringVar(&opts.StateDir, "state-dir", mustDefaultStateDir(), "directory for the CA and the state that survives a restart")
	meshFlags(f, &opts)
	f.StringVar(&opts.CADir, "ca-dir", "", "an operator's CA in cert-manager's layout (tls.crt, tls.key, ca.crt); default: make one in --state-dir")
	f.DurationVar(&opts.LeafTTL, "leaf-ttl", 0, "lifetime of workload certificates (default 24h)")
	f.StringVar(&opts.GRPCAddr, "grpc-addr", DefaultGRPCAddr, "address for proxies (discovery and registration)")
	f.StringVar(&opts.AdminAddr, "admin-addr", DefaultAdminAddr, "address of the admin API the CLI reads")
	f.BoolVar(&kubeMode, "kubernetes", false, "read the mesh from a Kubernetes API server: the cluster the control plane runs in, or --kubeconfig's")
	f.StringVar(&kubeconfig, "kubeconfig", "", "with --kubernetes: a kubeconfig file (default: in-cluster, else $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&webhook.Addr, "webhook-addr", "", "with --kubernetes: serve sidecar injection (POST /inject) over TLS here")
	f.StringVar(&failurePolicy, "webhook-failure-policy", string(admissionregistrationv1.Fail), "what becomes of a Pod the webhook cannot mesh, as the webhook configuration's failurePolicy says: Fail refuses it, Ignore lets it start outside the mesh")
	f.StringVar(&webhook.CertDir, "webhook-cert-dir", "", "the injection webhook's serving certificate: tls.crt and tls.key, reloaded when they change")
	f.StringVar(&webhook.Inject.ProxyImage, "proxy-image", "", "the image injected Pods run weft-proxy from")
	f.StringVar(&webhook.Inject.ControlPlane, "proxy-control-plane", "", "the control plane's address, host:port, as injected proxies dial it")
	f.StringVar(&opts.Namespace, "namespace", "", "with --kubernetes: the control plane's own namespace, where its CA Secret and Lease are (default: the namespace it runs in, else "+install.DefaultNamespace+")")
	f.StringVar(&opts.CASecret, "ca-secret", "", "with --kubernetes: keep the CA in this Secret of --namespace, shared by every replica (it must exist; an empty one gets a new CA)")
	f.StringVar(&lease, "leader-election-lease", "", "with --kubernetes: elect one replica through this Lease of --namespace (it must exist) to write to the API server; every replica serves")
	return cmd
}

// inClusterNamespaceFile is where a pod's service account says which
// namespace it runs in.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// ownNamespace is the namespace the control plane runs in, else the one
// weft install uses.
func ownNamespace() string {
	if b, err := os.ReadFile(inClusterNamespaceFile); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	return install.DefaultNamespace
}

// replicaName is this replica's name in the Lease: its Pod's, which the
// installed Deployment passes down, else the host's and the process's,
// unique enough for a control plane run by hand.
func replicaName() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, _ := os.Hostname()
	return fmt.Sprintf("%s-%d", host, os.Getpid())
}

// kubeConfig is the API server to read: path's, else the cluster the
// process runs in, else the user's default kubeconfig.
func kubeConfig(path string) (*rest.Config, error) {
	if path == "" {
		if cfg, err := rest.InClusterConfig(); err == nil {
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %q: %w", path, err)
	}
	return cfg, nil
}

// meshFlags are the mesh-wide settings weft control and weft up share.
func meshFlags(f *pflag.FlagSet, opts *controlplane.Options) {
	f.StringVar(&opts.TrustDomain, "trust-domain", controlplane.DefaultTrustDomain, "trust domain of the mesh's SPIFFE IDs")
	f.StringVar(&opts.MTLSMode, "mtls-mode", "strict", "mesh-wide mTLS mode of workloads whose services set none: strict, or permissive to also accept plaintext from outside the mesh")
}
