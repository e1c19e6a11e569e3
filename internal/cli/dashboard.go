package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/dashboard"
)

// DefaultDashboardAddr is where `weft dashboard` listens.
const DefaultDashboardAddr = "127.0.0.1:20400"

type dashboardFlags struct {
	listen string
	admin  string
	open   bool
	window time.Duration
}

func newDashboardCommand(logs *logFlags) *cobra.Command {
	f := &dashboardFlags{}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve the web dashboard: live topology, golden signals, routes, policies and problems",
		Long: `Serve the web dashboard on loopback: the mesh's topology with each edge's
request rate, success rate, p99 latency and mTLS, a page per service with
its golden signals over time, its routes and policies, and the manifests'
problems, refreshed every couple of seconds. It reads the control plane's
admin API and changes nothing. Ctrl-C stops it.`,
		Example: `  weft dashboard
  weft dashboard --listen 127.0.0.1:8080 --admin 127.0.0.1:15011`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := logs.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return runDashboard(cmd.Context(), f, cmd.OutOrStdout(), logger, openBrowser)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", DefaultDashboardAddr, "loopback address to serve the dashboard on (port 0 picks a free one)")
	fl.StringVar(&f.admin, "admin", DefaultAdminAddr, "control plane admin API address")
	fl.BoolVar(&f.open, "open", false, "open the dashboard in the desktop's browser (xdg-open)")
	fl.DurationVar(&f.window, "window", dashboard.DefaultStatsWindow, "window of the topology's rates and latencies")
	return cmd
}

// runDashboard serves the dashboard until ctx ends. open is how --open
// opens a URL.
func runDashboard(ctx context.Context, f *dashboardFlags, out io.Writer, logger *slog.Logger, open func(context.Context, string) error) error {
	if err := checkLoopback(f.listen); err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	if f.window <= 0 {
		return fmt.Errorf("--window: want a positive duration, got %s", f.window)
	}
	h, err := dashboard.New(dashboard.Options{Admin: f.admin, StatsWindow: f.window, Logger: logger.With("component", "dashboard")})
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", f.listen)
	if err != nil {
		return fmt.Errorf("dashboard listener: %w", err)
	}
	url := "http://" + ln.Addr().String() + "/"
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// The event streams' requests derive from ctx, so they end with
		// it instead of holding Shutdown up: a stream is never idle.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	fmt.Fprintf(out, "weft dashboard: %s (reading the control plane at %s; Ctrl-C stops)\n", url, f.admin)
	if err := reachable(ctx, f.admin); err != nil {
		// Not fatal: the dashboard says so on the page and recovers when
		// the control plane comes up.
		logger.Warn("the control plane's admin API does not answer yet; the dashboard shows it once it does", "admin", f.admin, "err", err)
	}
	if f.open {
		if err := open(ctx, url); err != nil {
			logger.Warn("could not open a browser; open the URL yourself", "url", url, "err", err)
		}
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("dashboard: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("dashboard: stopping: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// checkLoopback refuses an address that is not on loopback: the dashboard
// has no authentication, and shows the mesh to whoever reaches it.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%s: the dashboard serves on a loopback address only (127.0.0.1 or [::1]); it has no authentication", addr)
	}
	return nil
}

// reachable tells whether the admin API answers.
func reachable(ctx context.Context, admin string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/live", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /live: %s", resp.Status)
	}
	return nil
}

// openBrowser hands url to the desktop's opener, as the user asked with
// --open; it does not wait for the browser.
func openBrowser(ctx context.Context, url string) error {
	bin, err := exec.LookPath("xdg-open")
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, bin, url)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", bin, err)
	}
	go func() { _ = cmd.Wait() }()
	return nil
}
