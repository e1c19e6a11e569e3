package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/install"
	"github.com/weftmesh/weft/internal/install/crds"
)

// Images weft's manifests name unless told otherwise, tagged with weft's
// version ("latest" for a development build).
const (
	imageRepository      = "ghcr.io/weftmesh/weft"
	proxyImageRepository = "ghcr.io/weftmesh/weft-proxy"
)

func imageTag() string {
	if Version == "dev" {
		return "latest"
	}
	return Version
}

func newInstallCommand() *cobra.Command { return installCommand(time.Now, nil) }

// installCommand is `weft install`; tests give it a clock and a webhook
// certificate, the two things that differ between runs.
func installCommand(now func() time.Time, cert *install.CertBundle) *cobra.Command {
	opts := install.Options{Now: now, Cert: cert}
	var (
		dryRun  bool
		certDir string
		sets    []string
	)
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Print the Kubernetes objects that install weft on a cluster",
		Long: `Print, as YAML in the order to apply them, everything a cluster needs to
run weft: its namespace, the CRDs of weft's kinds and of the Gateway API and
SMI kinds it reads, the control plane's RBAC (least privilege), Deployment,
Service and PodDisruptionBudget, and the injection webhook with its serving
certificate (made here unless --webhook-cert-dir gives one). weft changes
nothing itself; kubectl applies the output. Server-side apply is needed:
the HTTPRoute CRD is too large for client-side apply's annotation.

--dry-run checks the objects (each decodes as its Kubernetes kind; the
webhook's Service, RBAC subjects and roles, Secrets and selectors all refer
to objects of the installation; the certificate is valid for the Service)
and lists them instead of printing them.`,
		Example: `  weft install | kubectl apply --server-side -f -
  weft install --dry-run
  weft install --crds weft,smi --image registry.example/weft:v1 --proxy-image registry.example/weft-proxy:v1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Replicas < 1 {
				return fmt.Errorf("--replicas %d: want at least 1", opts.Replicas)
			}
			var err error
			if opts.CRDs, err = parseSets(sets); err != nil {
				return err
			}
			if certDir != "" {
				if opts.Cert, err = install.LoadCertBundle(certDir); err != nil {
					return fmt.Errorf("--webhook-cert-dir: %w", err)
				}
			}
			objs, err := install.Render(opts)
			if err != nil {
				return err
			}
			if dryRun {
				return printSummary(cmd.OutOrStdout(), objs, "apply them with: weft install | kubectl apply --server-side -f -")
			}
			_, err = cmd.OutOrStdout().Write(install.YAML(objs))
			return err
		},
	}
	f := cmd.Flags()
	namespaceFlag(f, &opts.Namespace)
	f.StringVar(&opts.Image, "image", imageRepository+":"+imageTag(), "the control plane's image")
	f.StringVar(&opts.ProxyImage, "proxy-image", proxyImageRepository+":"+imageTag(), "the proxy's image, which the webhook injects")
	f.StringVar(&opts.ImagePullPolicy, "image-pull-policy", "", "Always, IfNotPresent or Never (default: the cluster's)")
	f.Int32Var(&opts.Replicas, "replicas", 2, "control plane replicas")
	f.StringVar(&opts.FailurePolicy, "failure-policy", "Fail", "what the API server does with a pod of a meshed namespace when the webhook cannot be reached: Fail (refuse it) or Ignore (start it outside the mesh)")
	f.StringVar(&opts.TrustDomain, "trust-domain", controlplane.DefaultTrustDomain, "trust domain of the mesh's SPIFFE IDs")
	f.StringSliceVar(&sets, "crds", setNames(crds.Sets), "CRD sets to install, of weft, gateway-api, smi (leave out those a cluster has from elsewhere; --crds= installs none)")
	f.StringVar(&certDir, "webhook-cert-dir", "", "the webhook's serving certificate, as ca.crt, tls.crt and tls.key (cert-manager's layout), for the name "+install.ServiceHost("NAMESPACE")+" (default: make one)")
	f.BoolVar(&dryRun, "dry-run", false, "check the objects and list them instead of printing them")
	return cmd
}

func newUninstallCommand() *cobra.Command {
	opts := install.UninstallOptions{}
	var sets []string
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Print the Kubernetes objects of an installation, to delete",
		Long: `Print the objects weft install made, as YAML in the order to delete them
(the webhook first, so that no pod waits on a control plane that is going;
the namespace last), for kubectl delete. weft changes nothing itself.

Deleting a CRD deletes every object of its kind, cluster-wide, so by default
only weft's own CRDs go (and with them every weft policy); the Gateway API
and SMI CRDs stay, as other software may use them, unless --crds names
them. Deleting the namespace deletes the CA Secret: a new installation
makes a new root.`,
		Example: `  weft uninstall | kubectl delete --ignore-not-found -f -
  weft uninstall --crds weft,gateway-api,smi | kubectl delete --ignore-not-found -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opts.CRDs, err = parseSets(sets); err != nil {
				return err
			}
			objs, err := install.Uninstall(opts)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(install.YAML(objs))
			return err
		},
	}
	f := cmd.Flags()
	namespaceFlag(f, &opts.Namespace)
	f.StringSliceVar(&sets, "crds", []string{string(crds.Weft)}, "CRD sets to delete, of weft, gateway-api, smi (--crds= keeps every CRD and the objects of their kinds)")
	return cmd
}

func namespaceFlag(f *pflag.FlagSet, ns *string) {
	f.StringVarP(ns, "namespace", "n", install.DefaultNamespace, "the control plane's namespace")
}

func setNames(sets []crds.Set) []string {
	out := make([]string, len(sets))
	for i, s := range sets {
		out[i] = string(s)
	}
	return out
}

// parseSets reads --crds: a non-nil list, empty for none.
func parseSets(names []string) ([]crds.Set, error) {
	out := []crds.Set{}
	for _, n := range names {
		s := crds.Set(strings.TrimSpace(n))
		if !slices.Contains(crds.Sets, s) {
			return nil, fmt.Errorf("--crds %q: want some of %s", n, strings.Join(setNames(crds.Sets), ", "))
		}
		out = append(out, s)
	}
	return out, nil
}

// printSummary lists objects as kubectl names them, and what to do next.
func printSummary(w io.Writer, objs []install.Object, next string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME")
	for _, o := range objs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", o.Kind, o.Namespace, o.Name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d objects, all valid; %s\n", len(objs), next)
	return err
}
