package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demo"
	"github.com/weftmesh/weft/internal/up"
)

func newUpCommand(logs *logFlags) *cobra.Command {
	var (
		withDemo  bool
		portBase  int
		proxyPath string
		opts      up.Options
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run a whole mesh on this machine",
		Long: `Run a whole mesh on this machine: the control plane, a weft-proxy for
every workload the manifests declare, and with --demo the demo application
and its load generator. Ctrl-C stops every process it started.`,
		Example: `  weft up --demo
  weft up -f ./mesh
  weft up --demo --trace-collector 127.0.0.1:4317`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if withDemo == (opts.ControlPlane.ManifestDir != "") {
				return errors.New("give exactly one of --demo and -f DIR")
			}
			if opts.ControlPlane.StateDir == "" {
				return errors.New("--state-dir: no default (no home directory); give one")
			}
			// Sampling or a transport without a collector would be ignored
			// silently; say so instead of leaving the user to wonder where
			// the spans went.
			if opts.Tracing.Collector == "" {
				for _, name := range []string{"trace-protocol", "trace-sample-ratio"} {
					if cmd.Flags().Changed(name) {
						return fmt.Errorf("--%s: needs --trace-collector", name)
					}
				}
			}
			if err := opts.Tracing.Validate(); err != nil {
				return err
			}
			logFile, err := openLogFile(opts.ControlPlane.StateDir)
			if err != nil {
				return err
			}
			defer logFile.Close()
			if opts.ControlPlane.Logger, err = logs.logger(logFile); err != nil {
				return err
			}
			if opts.ProxyPath, err = findProxy(proxyPath); err != nil {
				return err
			}
			if withDemo {
				if err := setUpDemo(&opts, portBase); err != nil {
					return err
				}
			}
			opts.Out = cmd.OutOrStdout()
			fmt.Fprintf(opts.Out, "starting weft (control plane log: %s)\n", logFile.Name())
			return up.Run(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&withDemo, "demo", false, "run the demo application")
	f.IntVar(&portBase, "port-base", 20000, "with --demo: the first of the loopback ports the demo uses")
	f.StringVarP(&opts.ControlPlane.ManifestDir, "manifests", "f", "", "directory of manifests to run")
	f.StringVar(&opts.ControlPlane.StateDir, "state-dir", mustDefaultStateDir(), "directory for the CA, state and logs")
	meshFlags(f, &opts.ControlPlane)
	f.StringVar(&opts.ControlPlane.GRPCAddr, "grpc-addr", DefaultGRPCAddr, "control plane address for proxies")
	f.StringVar(&opts.ControlPlane.AdminAddr, "admin-addr", DefaultAdminAddr, "control plane admin API address")
	f.StringVar(&proxyPath, "proxy", "", "weft-proxy binary (default: beside weft, then $PATH)")
	f.StringVar(&opts.Tracing.Collector, "trace-collector", "", "OpenTelemetry collector every proxy sends its spans to over OTLP: host:port for grpc, a URL for http (default: no tracing)")
	f.StringVar(&opts.Tracing.Protocol, "trace-protocol", "grpc", "OTLP transport to the trace collector: grpc or http")
	f.Float64Var(&opts.Tracing.SampleRatio, "trace-sample-ratio", 1, "share of the traces a proxy starts that are recorded, 0 to 1; a request that carries a sampling decision keeps it")
	return cmd
}

// setUpDemo writes the demo's manifests into the state directory and adds
// its applications, run by this same binary.
func setUpDemo(opts *up.Options, portBase int) error {
	if portBase < 1024 || portBase > 65000 {
		return fmt.Errorf("--port-base: want 1024..65000, got %d", portBase)
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the weft binary: %w", err)
	}
	layout := demo.NewLayout(portBase)
	dir := filepath.Join(opts.ControlPlane.StateDir, "manifests")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, data := range layout.Manifests {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("writing demo manifest: %w", err)
		}
	}
	opts.ControlPlane.ManifestDir = dir
	for _, p := range layout.Apps {
		opts.Apps = append(opts.Apps, up.Process{Name: p.Name, Path: self, Args: p.Args})
	}
	return nil
}

// defaultStateDir is where the control plane keeps its CA, registrations
// and logs, and where the other commands find its admin token.
func defaultStateDir() (string, error) {
	base := os.Getenv("XDG_STATE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("no --state-dir and no home directory: %w", err)
		}
		base = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(base, "weft"), nil
}

// mustDefaultStateDir is defaultStateDir for a flag's default, "" when
// there is none (the flag then has to be given).
func mustDefaultStateDir() string {
	dir, _ := defaultStateDir()
	return dir
}

func openLogFile(stateDir string) (*os.File, error) {
	// The state directory holds the CA's keys and the admin token: made
	// here first, it must be as private as the control plane makes it.
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(stateDir, "logs"), 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	return os.OpenFile(filepath.Join(stateDir, "logs", "control-plane.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
}

// findProxy looks for weft-proxy beside this binary, then on $PATH.
func findProxy(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), "weft-proxy")
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	p, err := exec.LookPath("weft-proxy")
	if err != nil {
		return "", errors.New("weft-proxy not found beside weft nor on $PATH (build it with `make build`, or pass --proxy)")
	}
	return strings.TrimSpace(p), nil
}
