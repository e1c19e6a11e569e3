package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/install"
)

func newInjectCommand() *cobra.Command {
	var (
		files        []string
		installOpts  install.Options
		controlPlane string
		ipv6         bool
	)
	cmd := &cobra.Command{
		Use:   "inject -f FILE",
		Short: "Add weft's proxy to the pods of Kubernetes YAML, as the webhook would",
		Long: `Read Kubernetes YAML (several documents, or a List) and write it with
weft's proxy injected into every pod template, exactly as the injection
webhook of an installation made with the same flags would: Pods,
Deployments, StatefulSets, DaemonSets, ReplicaSets, ReplicationControllers,
Jobs and CronJobs. Other objects, and pods that opt out (weft.dev/inject:
disabled), are written back unchanged; an object already injected is left
as it is. Asking for injection is the opt-in: the namespace's label is not
looked at.

The pods' annotations tune their proxy (weft.dev/skip-inbound-ports,
weft.dev/skip-outbound-ports, weft.dev/proxy-cpu, weft.dev/proxy-memory,
weft.dev/proxy-log-level); a bad value is an error naming it, and then
nothing is written. What happened to each object goes to standard error.`,
		Example: `  weft inject -f deployment.yaml | kubectl apply -f -
  kubectl get deploy web -o yaml | weft inject -f - | kubectl apply -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return fmt.Errorf("-f is required: a file, or - for standard input")
			}
			o := install.InjectOptions(installOpts)
			if controlPlane != "" {
				o.ControlPlane = controlPlane
			}
			o.IPv6 = ipv6
			var out bytes.Buffer
			for _, name := range files {
				data, err := readInput(cmd.InOrStdin(), name)
				if err != nil {
					return err
				}
				got, reports, err := inject.Documents(data, map[string]string{inject.InjectKey: inject.Enabled}, o)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				if out.Len() > 0 && len(got) > 0 {
					out.WriteString("---\n")
				}
				out.Write(got)
				for _, r := range reports {
					verdict := "injected"
					if !r.Injected {
						verdict = "unchanged: " + r.Reason
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s %s\n", name, r.Object, verdict)
					for _, w := range r.Warnings {
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s: warning: %s\n", name, r.Object, w)
					}
				}
			}
			_, err := cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&files, "filename", "f", nil, "YAML to inject, a file or - for standard input; repeat for more")
	// Not -n: that would read as the namespace of the workloads.
	f.StringVar(&installOpts.Namespace, "control-plane-namespace", install.DefaultNamespace, "the control plane's namespace, whose Service the proxies dial")
	f.StringVar(&installOpts.ProxyImage, "proxy-image", proxyImageRepository+":"+imageTag(), "the proxy's image")
	f.StringVar(&installOpts.ImagePullPolicy, "image-pull-policy", "", "Always, IfNotPresent or Never (default: the cluster's)")
	f.StringVar(&installOpts.TrustDomain, "trust-domain", controlplane.DefaultTrustDomain, "trust domain of the mesh's SPIFFE IDs")
	f.StringVar(&controlPlane, "control-plane", "", "host:port the proxies dial (default: the control plane Service of --control-plane-namespace)")
	f.BoolVar(&ipv6, "ipv6", false, "redirect the pods' IPv6 traffic too (clusters whose pods have IPv6 addresses)")
	return cmd
}

// readInput reads a file, or standard input for "-".
func readInput(stdin io.Reader, name string) ([]byte, error) {
	if name == "-" {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("-f: %w", err)
	}
	return data, nil
}
