package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/source/files"
)

// adminClient reads a control plane's admin API.
type adminClient struct{ addr string }

func (c adminClient) get(ctx context.Context, path string, into any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control plane admin API at %s (is `weft up` or `weft control` running? see --admin): %w", c.addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", path, err)
	}
	return nil
}

type outputFlags struct {
	admin  string
	output string
}

func (o *outputFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.admin, "admin", DefaultAdminAddr, "control plane admin API address")
	cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
}

func (o *outputFlags) validate() error {
	if o.output != "table" && o.output != "json" {
		return fmt.Errorf("--output: want table or json, got %q", o.output)
	}
	return nil
}

// show reads path from the admin API and, when -o json asks for it,
// prints it; printed then says the caller has nothing left to do.
func show[T any](cmd *cobra.Command, o *outputFlags, path string) (v T, printed bool, err error) {
	if err := o.validate(); err != nil {
		return v, false, err
	}
	if err := (adminClient{o.admin}).get(cmd.Context(), path, &v); err != nil {
		return v, false, err
	}
	if o.output == "json" {
		return v, true, printJSON(cmd.OutOrStdout(), v)
	}
	return v, false, nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // for people and jq: "->" rather than "-\u003e"
	return enc.Encode(v)
}

// errProblems makes `weft status` exit non-zero when manifests have
// problems, so scripts can check.
var errProblems = errors.New("the manifests have problems (listed above)")

func newStatusCommand() *cobra.Command {
	o := &outputFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the control plane's model, connected proxies and manifest problems",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, printed, err := show[controlplane.Status](cmd, o, "/api/v1/status")
			if err != nil || printed {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "model version %d: %d services, %d workloads, %d proxies connected\n",
				st.Version, st.Services, st.Workloads, len(st.Proxies))
			if m := st.Manifests; m != nil {
				fmt.Fprintf(out, "manifests: %s (%d files, %d objects, read %s)\n", m.Dir, m.Files, m.Objects, m.LastSync.Format(time.TimeOnly))
				if len(m.Problems) > 0 {
					fmt.Fprintf(out, "\n%d problem(s); the last good version of each object stays in force:\n", len(m.Problems))
					for _, p := range m.Problems {
						fmt.Fprintf(out, "  %s\n", p.Message)
					}
					return errProblems
				}
			}
			if k := st.Kubernetes; k != nil {
				fmt.Fprintf(out, "kubernetes: %d objects, watching %s (read %s)\n", k.Objects, orNone(strings.Join(k.Resources, ", ")), k.LastSync.Format(time.TimeOnly))
				fmt.Fprintf(out, "leadership: %s\n", leadership(k.Leadership))
				if len(k.Problems) > 0 {
					fmt.Fprintf(out, "\n%d problem(s); the last good version of each object stays in force:\n", len(k.Problems))
					for _, p := range k.Problems {
						fmt.Fprintf(out, "  %s: %s\n", p.Object, p.Message)
					}
					return errProblems
				}
			}
			return nil
		},
	}
	o.add(cmd)
	return cmd
}

// leadership says whether this replica runs the single-writer tasks.
func leadership(l controlplane.Leadership) string {
	switch {
	case l.Lease == "":
		return "leading (no election: the only replica)"
	case l.Leading:
		return fmt.Sprintf("leading, as %s (Lease %s)", l.Identity, l.Lease)
	default:
		return fmt.Sprintf("following %s, as %s (Lease %s)", orNone(l.Leader), l.Identity, l.Lease)
	}
}

func newGetCommand() *cobra.Command {
	o := &outputFlags{}
	cmd := &cobra.Command{
		Use:       "get (services|workloads|policies|routes|proxies|problems)",
		Short:     "List the mesh's services, workloads, policies, routes, connected proxies or manifest problems",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"services", "workloads", "policies", "routes", "proxies", "problems"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.validate(); err != nil {
				return err
			}
			c := adminClient{o.admin}
			out := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			defer tw.Flush()
			switch args[0] {
			case "services", "service", "svc":
				var svcs []controlplane.Service
				if err := c.get(cmd.Context(), "/api/v1/services", &svcs); err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(out, svcs)
				}
				fmt.Fprintln(tw, "SERVICE\tPORTS\tENDPOINTS")
				for _, s := range svcs {
					var ports, eps []string
					for _, p := range s.Ports {
						ports = append(ports, fmt.Sprintf("%d/%s", p.Port, orAuto(p.Protocol)))
					}
					for _, e := range s.Endpoints {
						eps = append(eps, e.Workload+"@"+e.Address)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, strings.Join(ports, ","), orNone(strings.Join(eps, ", ")))
				}
			case "workloads", "workload":
				var ws []controlplane.Workload
				if err := c.get(cmd.Context(), "/api/v1/workloads", &ws); err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(out, ws)
				}
				fmt.Fprintln(tw, "WORKLOAD\tIDENTITY\tPROXY\tLABELS\tSOURCE")
				for _, w := range ws {
					fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s\n", w.Name, w.ServiceAccount, w.Address, w.InboundPort, labels(w.Labels), w.Source)
				}
			case "policies", "policy":
				var ps []controlplane.Policy
				if err := c.get(cmd.Context(), "/api/v1/policies", &ps); err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(out, ps)
				}
				printPolicies(out, tw, ps)
			case "routes", "route":
				var rs []controlplane.Route
				if err := c.get(cmd.Context(), "/api/v1/routes", &rs); err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(out, rs)
				}
				printRoutes(out, tw, rs)
			case "proxies", "proxy":
				var st controlplane.Status
				if err := c.get(cmd.Context(), "/api/v1/status", &st); err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(out, st.Proxies)
				}
				fmt.Fprintln(tw, "WORKLOAD\tVERSION\tCONNECTED\tSUBSCRIBED TO")
				for _, p := range st.Proxies {
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Workload, p.Version, time.Since(p.Since).Round(time.Second), orNone(strings.Join(p.Subscriptions, ", ")))
				}
			case "problems", "problem", "errors":
				var st controlplane.Status
				if err := c.get(cmd.Context(), "/api/v1/status", &st); err != nil {
					return err
				}
				problems := []files.Problem{}
				if st.Manifests != nil {
					problems = st.Manifests.Problems
				}
				if st.Kubernetes != nil {
					for _, p := range st.Kubernetes.Problems {
						problems = append(problems, files.Problem{File: "kubernetes", Object: p.Object, Message: p.Message})
					}
				}
				if o.output == "json" {
					return printJSON(out, problems)
				}
				fmt.Fprintln(tw, "FILE\tOBJECT\tPROBLEM")
				for _, p := range problems {
					fmt.Fprintf(tw, "%s\t%s\t%s\n", p.File, orNone(p.Object), p.Message)
				}
			default:
				return fmt.Errorf("unknown resource %q: want services, workloads, policies, routes, proxies or problems", args[0])
			}
			return nil
		},
	}
	o.add(cmd)
	return cmd
}

// printPolicies writes the policies' table, then why each traffic policy
// not in force is not. Kinds without a status (authorization) show "-".
func printPolicies(out io.Writer, tw *tabwriter.Writer, ps []controlplane.Policy) {
	fmt.Fprintln(tw, "KIND\tPOLICY\tSTATUS\tSUMMARY")
	var notes []string
	for _, p := range ps {
		name := p.Namespace + "/" + p.Name
		status := "-"
		switch st := p.Status; {
		case st == nil:
		case st.InForce:
			status = "in force"
		default:
			status = "not in force"
			if st.Reason != "" {
				notes = append(notes, fmt.Sprintf("%s %s: %s", p.Kind, name, st.Reason))
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Kind, name, status, p.Summary)
	}
	if len(notes) > 0 {
		tw.Flush()
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, n)
		}
	}
}

// printRoutes writes the routes' table, then why each route is not in
// force on a parent, or what fails where it is.
func printRoutes(out io.Writer, tw *tabwriter.Writer, rs []controlplane.Route) {
	fmt.Fprintln(tw, "KIND\tROUTE\tPARENTS\tSTATUS\tSUMMARY")
	var notes []string
	for _, r := range rs {
		name := r.Namespace + "/" + r.Name
		inForce := 0
		for _, st := range r.Status {
			if st.InForce {
				inForce++
			}
			for _, reason := range st.Reasons {
				notes = append(notes, fmt.Sprintf("%s %s on %s: %s", r.Kind, name, st.Parent, reason))
			}
		}
		status := "in force"
		switch {
		case r.Rejected != "" && inForce == 0:
			status = "rejected"
		case r.Rejected != "":
			status = "rejected, previous in force"
		case inForce == 0:
			status = "not in force"
		case inForce < len(r.Status):
			status = "partly in force"
		}
		if r.Rejected != "" {
			notes = append(notes, fmt.Sprintf("%s %s rejected: %s", r.Kind, name, r.Rejected))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Kind, name, strings.Join(r.Parents, ","), status, r.Summary)
	}
	if len(notes) > 0 {
		tw.Flush()
		fmt.Fprintln(out)
		for _, n := range notes {
			fmt.Fprintln(out, n)
		}
	}
}

func labels(m map[string]string) string {
	var kv []string
	for k, v := range m {
		kv = append(kv, k+"="+v)
	}
	sort.Strings(kv)
	return orNone(strings.Join(kv, ","))
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func orAuto(s string) string {
	if s == "" {
		return "auto"
	}
	return s
}
