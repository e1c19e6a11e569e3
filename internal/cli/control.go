package cli

import (
	"github.com/spf13/cobra"

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
	f.StringVar(&opts.StateDir, "state-dir", "", "directory for state that survives a restart (registrations)")
	f.StringVar(&opts.GRPCAddr, "grpc-addr", DefaultGRPCAddr, "address for proxies (discovery and registration)")
	f.StringVar(&opts.AdminAddr, "admin-addr", DefaultAdminAddr, "address of the admin API the CLI reads")
	return cmd
}
