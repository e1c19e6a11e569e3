package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demo"
)

// Defaults of the control plane's listeners, which the operator commands
// also use to find it.
const (
	DefaultGRPCAddr  = "127.0.0.1:15010"
	DefaultAdminAddr = "127.0.0.1:15011"
)

// Execute runs the weft command line and returns the process exit code.
func Execute() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := NewRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "weft:", err)
		return 1
	}
	return 0
}

// NewRootCommand builds the command tree.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "weft",
		Short:         "weft is a service mesh that runs the same on one laptop and on Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	logs := &logFlags{}
	root.PersistentFlags().StringVar(&logs.level, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&logs.format, "log-format", "text", "log format: text or json")
	root.AddCommand(
		newControlCommand(logs),
		newUpCommand(logs),
		newStatusCommand(),
		newGetCommand(),
		newDescribeCommand(),
		newStatCommand(),
		newIdentityCommand(),
		newCheckCommand(),
		newDashboardCommand(logs),
		newTapCommand(),
		newTopCommand(),
		newInstallCommand(),
		newUninstallCommand(),
		newInjectCommand(),
		demo.NewCommand(),
		newVersionCommand(),
	)
	return root
}

type logFlags struct {
	level  string
	format string
}

func (f *logFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch strings.ToLower(f.format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: want text or json, got %q", f.format)
}

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print weft's version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "weft", Version) },
	}
}
