package install

import (
	"fmt"
	"slices"

	"github.com/weftmesh/weft/internal/install/crds"
)

// UninstallOptions say what to remove.
type UninstallOptions struct {
	// Namespace is the control plane's; DefaultNamespace if empty.
	Namespace string
	// CRDs are the sets of CRDs to remove. Removing a CRD removes every
	// object of its kind in the cluster, so the default (nil) is weft's
	// own only: Gateway API's and SMI's may serve others.
	CRDs []crds.Set
}

// Uninstall returns what an installation in the namespace consists of, in
// the order to delete it: the webhook first, so that no pod creation waits
// on a control plane that is going, the namespace last. Each object has
// its identity only (apiVersion, kind, name, namespace), which is all
// `kubectl delete -f` reads.
func Uninstall(opts UninstallOptions) ([]Object, error) {
	if opts.Namespace == "" {
		opts.Namespace = DefaultNamespace
	}
	if opts.CRDs == nil {
		opts.CRDs = []crds.Set{crds.Weft}
	}
	// Render with a stand-in certificate: only the objects' identities
	// are kept, so no key need be made for them.
	all, err := render(Options{Namespace: opts.Namespace, Image: "unused", ProxyImage: "unused", CRDs: opts.CRDs, Cert: &CertBundle{}}, false)
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, o := range slices.Backward(all) {
		id, err := encode(identity(o))
		if err != nil {
			return nil, fmt.Errorf("uninstall: %w", err)
		}
		out = append(out, id)
	}
	return out, nil
}

// identity is what names an object.
func identity(o Object) map[string]any {
	meta := map[string]any{"name": o.Name}
	if o.Namespace != "" {
		meta["namespace"] = o.Namespace
	}
	return map[string]any{"apiVersion": o.APIVersion, "kind": o.Kind, "metadata": meta}
}
