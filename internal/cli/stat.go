package cli

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/stats"
)

func newStatCommand() *cobra.Command {
	o := &outputFlags{}
	var window time.Duration
	cmd := &cobra.Command{
		Use:   "stat [services|routes|workloads|edges]",
		Short: "Show success rate, requests per second, latency and TCP connections of the mesh's services, routes, workloads or edges",
		Long: `Show the golden signals of the mesh over a recent window: the share of
requests that succeeded (not a 5xx, not a gRPC error, answered at all),
requests per second, latency percentiles, and TCP connections open.

The control plane computes them from the proxies' own metrics, which it
reads every 5s: no Prometheus is needed. A service's numbers are what
its callers' proxies saw; a workload's what its own proxy took in; an
edge is one workload's calls to one service, and says whether they went
over mTLS. Services are the default.`,
		Example: `  weft stat
  weft stat edges --window 1m
  weft stat services -o json`,
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: []string{"services", "routes", "workloads", "edges"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			if window <= 0 {
				return fmt.Errorf("--window: want a positive duration, got %s", window)
			}
			kind := "services"
			if len(args) == 1 {
				var ok bool
				if kind, ok = statKinds[args[0]]; !ok {
					return fmt.Errorf("unknown kind %q: want services, routes, workloads or edges", args[0])
				}
			}
			var sum stats.Summary
			if err := (adminClient{o.admin}).get(cmd.Context(), "/api/v1/stats?window="+url.QueryEscape(window.String()), &sum); err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(cmd.OutOrStdout(), statView(sum, kind))
			}
			printStats(cmd.OutOrStdout(), sum, kind)
			statNotes(cmd.ErrOrStderr(), sum, window)
			return nil
		},
	}
	o.add(cmd)
	cmd.Flags().DurationVarP(&window, "window", "w", controlplane.DefaultStatsWindow,
		"how far back to look (kept: the last 10 minutes, at the control plane's scrape interval)")
	return cmd
}

// statKinds maps the names a user may type to the list they choose.
var statKinds = map[string]string{
	"services": "services", "service": "services", "svc": "services",
	"routes": "routes", "route": "routes",
	"workloads": "workloads", "workload": "workloads",
	"edges": "edges", "edge": "edges",
}

// statDoc is GET /api/v1/stats with only the chosen list, so that
// `-o json` prints what the table shows, with the window it is over. The
// outer fields hide the Summary's; a nil one is left out.
type statDoc struct {
	stats.Summary
	Services  *[]stats.ServiceStats  `json:"services,omitempty"`
	Routes    *[]stats.RouteStats    `json:"routes,omitempty"`
	Workloads *[]stats.WorkloadStats `json:"workloads,omitempty"`
	Edges     *[]stats.EdgeStats     `json:"edges,omitempty"`
}

func statView(sum stats.Summary, kind string) statDoc {
	d := statDoc{Summary: sum}
	switch kind {
	case "services":
		d.Services = &sum.Services
	case "routes":
		d.Routes = &sum.Routes
	case "workloads":
		d.Workloads = &sum.Workloads
	case "edges":
		d.Edges = &sum.Edges
	}
	return d
}

func printStats(out io.Writer, sum stats.Summary, kind string) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	defer tw.Flush()
	const signals = "SUCCESS\tRPS\tP50\tP95\tP99"
	switch kind {
	case "services":
		fmt.Fprintln(tw, "NAME\t"+signals+"\tTCP CONNS")
		for _, s := range sum.Services {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, signalColumns(s.Signals), tcpConns(s.TCP))
		}
	case "workloads":
		fmt.Fprintln(tw, "NAME\t"+signals+"\tTCP CONNS")
		for _, w := range sum.Workloads {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", w.Name, signalColumns(w.Signals), tcpConns(w.TCP))
		}
	case "routes":
		// Routes take requests, not connections: their backends instead.
		fmt.Fprintln(tw, "NAME\t"+signals+"\tBACKENDS")
		for _, r := range sum.Routes {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, signalColumns(r.Signals), orNone(strings.Join(r.Backends, ",")))
		}
	case "edges":
		fmt.Fprintln(tw, "SOURCE\tDESTINATION\tMTLS\t"+signals+"\tTCP CONNS")
		for _, e := range sum.Edges {
			mtls := "-"
			if e.MTLS != nil {
				mtls = map[bool]string{true: "yes", false: "no"}[*e.MTLS]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Source, e.Destination, mtls, signalColumns(e.Signals), tcpConns(e.TCP))
		}
	}
}

// signalColumns are SUCCESS, RPS, P50, P95 and P99; "-" where there were
// no requests.
func signalColumns(s stats.Signals) string {
	success, p50, p95, p99 := "-", "-", "-", "-"
	if s.SuccessRate != nil {
		success = fmt.Sprintf("%.2f%%", *s.SuccessRate*100)
	}
	if l := s.LatencyMs; l != nil {
		p50, p95, p99 = formatMs(l.P50), formatMs(l.P95), formatMs(l.P99)
	}
	return strings.Join([]string{success, fmt.Sprintf("%.2f", s.RPS), p50, p95, p99}, "\t")
}

// formatMs writes a latency with the digits that matter at its scale.
func formatMs(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 10:
		return fmt.Sprintf("%.1fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fs", ms/1000)
}

func tcpConns(t *stats.TCP) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprint(t.Open)
}

// statNotes says on standard error what the table cannot: that there is
// nothing to show yet, that proxies could not be read, or that the window
// is shorter than asked for.
func statNotes(w io.Writer, sum stats.Summary, window time.Duration) {
	if sum.From.IsZero() {
		fmt.Fprintf(w, "no stats yet: the control plane reads the proxies' metrics every %s and needs two reads; try again shortly\n", sum.Interval)
		return
	}
	got := time.Duration(sum.Seconds * float64(time.Second))
	interval, err := time.ParseDuration(sum.Interval)
	if err == nil && got+interval/2 < window {
		fmt.Fprintf(w, "the samples kept cover only the last %s\n", got.Round(time.Second))
	}
	if n := len(sum.Proxies.Failed); n > 0 {
		fmt.Fprintf(w, "%d of %d proxies could not be read at the last scrape; their calls show when they can be:\n", n, sum.Proxies.Targets)
		for _, f := range sum.Proxies.Failed {
			fmt.Fprintf(w, "  %s (%s): %s\n", f.Workload, f.Address, f.Error)
		}
	}
}
