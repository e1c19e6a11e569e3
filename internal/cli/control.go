package cli

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/controlplane"
)

func newControlCommand(logs *logFlags) *cobra.Command {
	opts := controlplane.Options{}
	cmd := &cobra.Command{
		Use:   "control",
		Short: "Run the control plane",
		Long: `Run the control plane: it watches a directory of manifests (universal
mode), accepts workload registrations, and streams each proxy the part of
the mesh it needs.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			opts.Logger = logger
			cp, err := controlplane.New(opts)
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
	return cmd
}

// meshFlags are the mesh-wide settings weft control and weft up share.
func meshFlags(f *pflag.FlagSet, opts *controlplane.Options) {
	f.StringVar(&opts.TrustDomain, "trust-domain", controlplane.DefaultTrustDomain, "trust domain of the mesh's SPIFFE IDs")
	f.StringVar(&opts.MTLSMode, "mtls-mode", "strict", "mesh-wide mTLS mode of workloads whose services set none: strict, or permissive to also accept plaintext from outside the mesh")
}
