// Package install renders what a Kubernetes cluster needs to run weft, as
// objects to apply (`weft install`) or to delete (`weft uninstall`), and
// checks them (`weft install --dry-run`) without a cluster.
//
// Render returns, in apply order: the control plane's Namespace; the CRDs
// (internal/install/crds); its ServiceAccount and the RBAC it needs, least
// privilege (read-only, list and watch, on what the control plane reads;
// TokenReviews to check proxies' tokens; events; the status of weft's
// kinds; the ConfigMaps of the trust bundle it keeps in every namespace
// of the mesh, by name but for create, which RBAC cannot narrow to a
// name; and, in its namespace only, get and update of its CA Secret and
// its leader-election Lease, both rendered empty here so that it never
// needs create, which RBAC cannot narrow to one name); the webhook's
// serving certificate, in a Secret; the control plane's Service and
// Deployment (replicas spread over nodes, readiness on the admin /ready);
// its PodDisruptionBudget; and last the MutatingWebhookConfiguration,
// so the API server calls the webhook only once everything behind it
// exists. The certificate is made here (a CA and a serving certificate for
// the Service's DNS names) unless the operator brings one.
//
// Everything is deterministic but the certificate and its key, which
// Options can supply, so output is golden-file tested.
//
// It must not import the control plane's or the proxy's packages: it
// knows them only by the command lines and ports it writes (see the
// constants), which the control plane must accept.
package install
