package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
)

func newDescribeCommand() *cobra.Command {
	o := &outputFlags{}
	cmd := &cobra.Command{
		Use:   "describe KIND NAMESPACE/NAME",
		Short: "Show one route or policy: what it does, and where it is in force or why not",
		Example: `  weft describe HTTPRoute demo/catalog-canary
  weft describe RetryPolicy demo/catalog-retries`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind, ref := args[0], args[1]
			ns, name, ok := strings.Cut(ref, "/")
			if !ok {
				return fmt.Errorf("%q: want namespace/name", ref)
			}
			if err := o.validate(); err != nil {
				return err
			}
			c := adminClient{o.admin}
			var routes []controlplane.Route
			if err := c.get(cmd.Context(), "/api/v1/routes", &routes); err != nil {
				return err
			}
			for _, r := range routes {
				if strings.EqualFold(r.Kind, kind) && r.Namespace == ns && r.Name == name {
					return describeOut(cmd.OutOrStdout(), o, r, func(w io.Writer) { describeRoute(w, r) })
				}
			}
			var policies []controlplane.Policy
			if err := c.get(cmd.Context(), "/api/v1/policies", &policies); err != nil {
				return err
			}
			for _, p := range policies {
				if strings.EqualFold(p.Kind, kind) && p.Namespace == ns && p.Name == name {
					return describeOut(cmd.OutOrStdout(), o, p, func(w io.Writer) { describePolicy(w, p) })
				}
			}
			return fmt.Errorf("no %s %s in the mesh (weft get routes, weft get policies list them)", kind, ref)
		},
	}
	o.add(cmd)
	return cmd
}

func describeOut(w io.Writer, o *outputFlags, v any, text func(io.Writer)) error {
	if o.output == "json" {
		return printJSON(w, v)
	}
	text(w)
	return nil
}

func describeRoute(w io.Writer, r controlplane.Route) {
	fmt.Fprintf(w, "%s %s/%s\n  parents: %s\n  rules:   %s\n", r.Kind, r.Namespace, r.Name, strings.Join(r.Parents, ", "), r.Summary)
	if r.Rejected != "" {
		fmt.Fprintf(w, "  rejected: %s\n", r.Rejected)
	}
	for _, s := range r.Status {
		state := "in force"
		if !s.InForce {
			state = "not in force"
		}
		fmt.Fprintf(w, "  on %s: %s\n", s.Parent, state)
		for _, reason := range s.Reasons {
			fmt.Fprintf(w, "    %s\n", reason)
		}
	}
}

func describePolicy(w io.Writer, p controlplane.Policy) {
	fmt.Fprintf(w, "%s %s/%s\n  %s\n", p.Kind, p.Namespace, p.Name, p.Summary)
	switch {
	case p.Status == nil:
	case p.Status.InForce:
		fmt.Fprintln(w, "  in force")
	default:
		fmt.Fprintf(w, "  not in force: %s\n", p.Status.Reason)
	}
}
