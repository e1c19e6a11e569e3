package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/controlplane"
)

// privileged are the flags of a command that calls the admin API with the
// admin token.
type privileged struct{ admin, stateDir string }

func (p *privileged) add(f *pflag.FlagSet) {
	f.StringVar(&p.admin, "admin", DefaultAdminAddr, "control plane admin API address")
	f.StringVar(&p.stateDir, "state-dir", mustDefaultStateDir(), "the control plane's state directory (holds the admin token)")
}

func (p *privileged) post(ctx context.Context, path string, body, into any) error {
	return adminClient{p.admin}.post(ctx, p.stateDir, path, body, into)
}

// post makes an admin API call that needs the admin token, which lives in
// the control plane's state directory.
func (c adminClient) post(ctx context.Context, stateDir, path string, body, into any) error {
	token, err := os.ReadFile(filepath.Join(stateDir, "admin.token"))
	if err != nil {
		return fmt.Errorf("admin token (is --state-dir the control plane's?): %w", err)
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr+path, bytes.NewReader(payload))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("control plane admin API at %s: %w", c.addr, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return fmt.Errorf("POST %s: %s", path, e.Error)
		}
		return fmt.Errorf("POST %s: %s", path, resp.Status)
	}
	return json.Unmarshal(data, into)
}

func newIdentityCommand() *cobra.Command {
	o := &outputFlags{}
	cmd := &cobra.Command{
		Use:   "identity",
		Short: "Show the mesh's trust anchors, their expiry and the certificates each signed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, printed, err := show[controlplane.Identity](cmd, o, "/api/v1/identity")
			if err != nil || printed {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "trust domain %s", id.TrustDomain)
			if id.RotationPhase != "" {
				fmt.Fprintf(out, " (root rotation %s)", id.RotationPhase)
			}
			fmt.Fprintln(out)
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "\nKIND\tSUBJECT\tEXPIRES\tSIGNS\tLIVE LEAVES\tFINGERPRINT")
			for _, a := range id.Anchors {
				fmt.Fprintf(tw, "root\t%s\t%s\t%s\t%d\t%s\n", a.Subject, a.NotAfter.Format(time.DateOnly), yesNo(a.Active), a.LiveLeaves, short(a.Fingerprint))
			}
			in := id.Intermediate
			fmt.Fprintf(tw, "intermediate\t%s\t%s\t%s\t-\t%s\n", in.Subject, in.NotAfter.Format(time.DateOnly), "yes", short(in.Fingerprint))
			return tw.Flush()
		},
	}
	o.add(cmd)
	cmd.AddCommand(newTokenCommand(), newRevokeCommand(), newRotateCommand())
	return cmd
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}

func newTokenCommand() *cobra.Command {
	var pf privileged
	var req controlplane.TokenRequest
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Mint a join token: the proof a new workload's proxy gives for its first certificate",
		Long: `Mint a join token bound to one identity (namespace and service account).
Give it to the proxy in the
WEFT_JOIN_TOKEN environment variable or a file (--token-file): it is a
secret, so keep it off command lines.`,
		Example: `  weft identity token --namespace shop --service-account catalog --ttl 1h > catalog.token`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var resp controlplane.TokenResponse
			if err := pf.post(cmd.Context(), "/api/v1/identity/tokens", req, &resp); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), resp.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "join token %s for %s/%s, expires %s\n", resp.ID, req.Namespace, req.ServiceAccount, resp.Expires.Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	pf.add(f)
	f.StringVar(&req.Namespace, "namespace", "", "namespace of the identity")
	f.StringVar(&req.ServiceAccount, "service-account", "default", "service account of the identity")
	f.StringVar(&req.TTL, "ttl", "1h", "how long the token stays valid")
	_ = cmd.MarkFlagRequired("namespace")
	return cmd
}

func newRevokeCommand() *cobra.Command {
	var pf privileged
	var req controlplane.RevokeRequest
	cmd := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a join token before it expires (certificates already issued stay valid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pf.post(cmd.Context(), "/api/v1/identity/tokens/revoke", req, &req); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "join token %s revoked\n", req.ID)
			return nil
		},
	}
	f := cmd.Flags()
	pf.add(f)
	f.StringVar(&req.ID, "id", "", "the token's ID, as weft identity token printed it")
	_ = cmd.MarkFlagRequired("id")
	return cmd
}

func newRotateCommand() *cobra.Command {
	var pf privileged
	var step string
	var force bool
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Rotate the trust anchor with no downtime, one step at a time",
		Long: `Rotate the root CA without dropping traffic, in three steps:

  prepare   make a new root and add it to every proxy's trust bundle
            (certificates are still signed under the old root)
  activate  sign under the new root; every proxy renews its certificate
  finish    remove the old root from the bundle (refused while
            certificates under it are live, unless --force)

Wait between steps until 'weft identity' shows the expected live leaves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id controlplane.Identity
			req := controlplane.RotateRequest{Step: step, Force: force}
			if err := pf.post(cmd.Context(), "/api/v1/identity/rotate", req, &id); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "rotation step %s done; phase now %q, %d root(s) in the bundle\n", step, id.RotationPhase, len(id.Anchors))
			return nil
		},
	}
	f := cmd.Flags()
	pf.add(f)
	f.StringVar(&step, "step", "", "prepare, activate or finish")
	f.BoolVar(&force, "force", false, "with finish: remove the old root even while certificates under it are live")
	_ = cmd.MarkFlagRequired("step")
	return cmd
}

// leafProblems finds workload certificates in use that are not being
// renewed: proxies renew at about half of a certificate's life, so one
// with less than a quarter left means its proxies cannot reach the
// control plane or are refused.
func leafProblems(leaves []controlplane.Leaf, now time.Time) []string {
	var out []string
	for _, l := range leaves {
		if l.Proxies == 0 {
			continue
		}
		life, left := l.NotAfter.Sub(l.Issued), l.NotAfter.Sub(now)
		switch {
		case left <= 0:
			out = append(out, fmt.Sprintf("workload certificate of %s (%d proxies) expired on %s: its proxies are cut off from the mesh",
				l.SPIFFEID, l.Proxies, l.NotAfter.Format(time.RFC3339)))
		case left < life/4:
			out = append(out, fmt.Sprintf("workload certificate of %s (%d proxies) expires in %s and was not renewed: check those proxies' logs",
				l.SPIFFEID, l.Proxies, left.Round(time.Second)))
		}
	}
	return out
}

// errCheckFailed makes `weft check` exit non-zero.
var errCheckFailed = errors.New("checks found problems (listed above)")

func newCheckCommand() *cobra.Command {
	var admin string
	var within time.Duration
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check the mesh's health: manifests, and certificates about to expire",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := adminClient{admin}
			out := cmd.OutOrStdout()
			var problems []string
			var st controlplane.Status
			if err := c.get(cmd.Context(), "/api/v1/status", &st); err != nil {
				return err
			}
			fmt.Fprintf(out, "control plane reachable: %d proxies connected\n", len(st.Proxies))
			if st.Manifests != nil {
				for _, p := range st.Manifests.Problems {
					problems = append(problems, "manifest: "+p.Message)
				}
			}
			var id controlplane.Identity
			if err := c.get(cmd.Context(), "/api/v1/identity", &id); err != nil {
				return err
			}
			now := time.Now()
			certs := append([]controlplane.Anchor{id.Intermediate}, id.Anchors...)
			for i, a := range certs {
				kind := "trust anchor"
				if i == 0 {
					kind = "intermediate"
				}
				switch left := a.NotAfter.Sub(now); {
				case left <= 0:
					problems = append(problems, fmt.Sprintf("%s %s expired on %s", kind, a.Subject, a.NotAfter.Format(time.RFC3339)))
				case left < within:
					problems = append(problems, fmt.Sprintf("%s %s expires in %s (%s): rotate it (weft identity rotate)",
						kind, a.Subject, left.Round(time.Hour), a.NotAfter.Format(time.DateOnly)))
				}
			}
			problems = append(problems, leafProblems(id.Leaves, now)...)
			if len(problems) == 0 {
				fmt.Fprintf(out, "certificates: no CA certificate expires within %s, every workload certificate in use is being renewed\nall checks passed\n", within)
				return nil
			}
			for _, p := range problems {
				fmt.Fprintln(out, "  ✗", p)
			}
			return errCheckFailed
		},
	}
	cmd.Flags().StringVar(&admin, "admin", DefaultAdminAddr, "control plane admin API address")
	cmd.Flags().DurationVar(&within, "warn-within", 30*24*time.Hour, "warn about certificates that expire within this")
	return cmd
}
