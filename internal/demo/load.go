package demo

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/demo/loadgen"
)

func newLoadCommand() *cobra.Command {
	var cfg loadgen.Config
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Call web's /api/products at a fixed rate and log a summary every few seconds",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			cfg.Log = logger().With("service", "loadgen")
			_, err := loadgen.Run(ctx, cfg)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080/api/products", "URL to call (loopback only)")
	fs.Float64Var(&cfg.Rate, "rate", 5, "requests per second")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "most requests in flight; ticks beyond it are skipped")
	fs.DurationVar(&cfg.Duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.Int64Var(&cfg.Requests, "requests", 0, "stop after this many requests (0: no limit)")
	fs.DurationVar(&cfg.ReportEvery, "report-every", 0, "summary interval (default 5s)")
	fs.DurationVar(&cfg.Timeout, "timeout", 0, "bound on each request (default 5s)")
	return cmd
}
