package demo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/demo/app"
	"github.com/weftmesh/weft/internal/demo/fault"
)

// NewCommand returns the `demo` command, with subcommands
// `serve <web|catalog|stock|audit>` and `load`.
func NewCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the demo application's services and load generator",
		Long: "The demo application `weft up --demo` runs behind the mesh: web (HTTP/1.1) calls\n" +
			"catalog (v1 HTTP/1.1, v2 h2c) and audit (TCP); catalog calls stock (gRPC).\n" +
			"Every service takes --latency, --latency-jitter and --error-rate, changeable at\n" +
			"runtime with POST " + fault.ControlPath + "?latency=100ms&error_rate=0.5.",
		Args: cobra.NoArgs,
		RunE: needSubcommand,
	}
	serve := &cobra.Command{
		Use:   "serve <web|catalog|stock|audit>",
		Short: "Serve one demo service",
		Args:  cobra.NoArgs, // an unknown service is an error, not help
		RunE:  needSubcommand,
	}
	serve.AddCommand(newWebCommand(), newCatalogCommand(), newStockCommand(), newAuditCommand())
	cmd.AddCommand(serve, newLoadCommand())
	return cmd
}

func needSubcommand(cmd *cobra.Command, _ []string) error {
	return fmt.Errorf("%s: name a subcommand (see --help)", cmd.CommandPath())
}

// serveFlags are the flags every service has.
type serveFlags struct {
	listen      string
	controlAddr string
	faults      fault.Settings
}

func (f *serveFlags) register(fs *pflag.FlagSet, listen string) {
	fs.StringVar(&f.listen, "listen", listen, "address to serve on (loopback)")
	fs.StringVar(&f.controlAddr, "control-addr", "", "also serve "+fault.ControlPath+" alone on this address")
	fs.DurationVar(&f.faults.Latency, "latency", 0, "delay added to every request")
	fs.DurationVar(&f.faults.Jitter, "latency-jitter", 0, "further random delay in [0, jitter)")
	fs.Float64Var(&f.faults.ErrorRate, "error-rate", 0, "share of requests, 0..1, that fail")
}

// serverFunc serves on ln until ctx ends.
type serverFunc func(ctx context.Context, ln net.Listener) error

// run listens, serves with srv (and the control endpoint if asked) until the
// command is interrupted or a server fails, then stops the rest.
func (f *serveFlags) run(cmd *cobra.Command, in *fault.Injector, srv serverFunc) error {
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	servers := []serverFunc{srv}
	addrs := []string{f.listen}
	if f.controlAddr != "" {
		servers = append(servers, func(ctx context.Context, ln net.Listener) error {
			return app.ServeControl(ctx, ln, in)
		})
		addrs = append(addrs, f.controlAddr)
	}
	lns := make([]net.Listener, len(addrs))
	for i, addr := range addrs {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns[:i] {
				_ = l.Close()
			}
			return fmt.Errorf("listen: %w", err)
		}
		lns[i] = ln
	}
	errc := make(chan error, len(servers))
	for i, s := range servers {
		go func() { errc <- s(ctx, lns[i]) }()
	}
	var errs []error
	for range servers {
		errs = append(errs, <-errc)
		cancel() // the first to end stops the others
	}
	return errors.Join(errs...)
}

func newInjector(s fault.Settings) (*fault.Injector, error) {
	in, err := fault.New(s)
	if err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	return in, nil
}

// logger is the default logger, read when a command runs so the caller's
// slog.SetDefault applies. The app services add their own "service" attribute.
func logger() *slog.Logger { return slog.Default() }
