// Package inject turns a Pod, or the pod template of a workload, into a
// meshed one: it adds weft's proxy as a native sidecar and the init step
// that redirects the pod's traffic to it. The mutating admission webhook
// of the control plane and `weft inject` (the same change, offline, on
// YAML) both call it, so a pod is meshed the same way whichever path it
// takes.
//
// Everything here is a pure function of its input and Options: no API
// calls, no clock, no randomness. It must not import the proxy
// (internal/proxy/...), the control plane (internal/controlplane,
// internal/discovery, internal/source/...) or a Kubernetes client; only
// the API types of k8s.io/api and k8s.io/apimachinery, and
// internal/manifest for the sidecar's names and ports, which the control
// plane reads back.
//
// # What an injected pod gets
//
// Two init containers, placed before the pod's own init containers:
//
//   - weft-init runs `weft-proxy init` once, as root with NET_ADMIN and
//     NET_RAW only, to install the iptables rules of the pod's network
//     namespace;
//   - weft-proxy, with restartPolicy Always: a native sidecar (Kubernetes
//     1.29 and later). The kubelet starts it before the pod's other init
//     containers and its app containers, waits for its startup probe
//     (the proxy's admin /ready: a certificate and a config are in
//     force), keeps it running beside them, and stops it after them, so a
//     Job still completes.
//
// The proxy runs as UID and GID 2102 (Options.ProxyUID), non-root, with
// no privilege escalation, no capabilities and a read-only root file
// system. Its identity comes from a projected ServiceAccount token of
// audience "weft" (volume weft-identity, mounted at
// /var/run/secrets/weft.dev/serviceaccount), which the control plane
// checks with a TokenReview. Such a token pins no CA, so the proxy trusts
// the control plane by the mesh's trust bundle, from the ConfigMap
// weft-ca-bundle (key ca.crt) that the control plane's leader keeps in
// every namespace of the mesh, mounted read-only at
// /var/run/secrets/weft.dev/ca. Its workload is the pod's namespace/name,
// which it reads from the Downward API at run time (POD_NAMESPACE,
// POD_NAME, and POD_IP): a pod made from a generateName has no name yet
// when the webhook sees it.
//
// # The command lines, a contract with cmd/weft-proxy
//
// The init container runs (values are the defaults of Options):
//
//	weft-proxy init --proxy-uid=2102 --inbound-port=15006 --outbound-port=15001
//	    --mesh-port=4143 --admin-port=15100
//	    [--skip-inbound-ports=PORT,...] [--skip-outbound-ports=PORT,...] [--ipv6]
//
// The proxy's own traffic (by its UID) is never redirected, or it would
// loop back into itself. Arriving and departing TCP is redirected to the
// proxy's transparent inbound and outbound ports, but for its mesh and
// admin ports, which other proxies (mTLS), the kubelet's probes and the
// control plane's scrapes reach as they are, and for the ports the pod's
// annotations skip. With Options.IPv6 the rules cover IPv6 too.
//
// The sidecar runs:
//
//	weft-proxy --control-plane=ADDR --workload=$(POD_NAMESPACE)/$(POD_NAME)
//	    --trust-domain=TD --transparent
//	    --transparent-inbound-port=15006 --transparent-outbound-port=15001
//	    --admin=:15100 --log-level=LEVEL --log-format=json
//	    --token-file=/var/run/secrets/weft.dev/serviceaccount/token
//	    --ca-file=/var/run/secrets/weft.dev/ca/ca.crt
//	    [--app-probes=JSON]
//
// and declares its mesh and admin ports as container ports named
// weft-inbound and weft-admin, which is how the control plane
// (internal/manifest's WorkloadFromPod) learns the Workload's inbound and
// admin ports. Both containers expect the image's entrypoint to be
// weft-proxy, with iptables-restore and iptables-save on its PATH.
//
// # The app's probes
//
// An HTTP probe of an app port would arrive from outside the mesh, in
// plaintext, which a strict workload refuses. Each app container's HTTP
// probes move onto the proxy's admin port, at
// /app-health/CONTAINER/KIND (internal/appprobe), and --app-probes gives
// the proxy what they were, which it sends to the app on loopback. Left
// as they are: probes of a skipped inbound port, probes with a Host, and
// TCP, gRPC and exec probes; a probe naming a port its container does not
// have stays too, with a warning.
//
// # Opting in and out
//
// In order, the first that applies decides:
//
//  1. the pod's own setting, weft.dev/inject: "enabled" or "disabled", as
//     an annotation or a label (both may be given, but must agree; any
//     other value is an error naming it);
//  2. its namespace's label weft.dev/inject=enabled;
//  3. otherwise the pod is not injected.
//
// A pod with hostNetwork is never injected: the init step would rewrite
// the node's own iptables rules.
//
// In a cluster the webhook only sees pods of namespaces labelled
// weft.dev/inject=enabled, and never pods labelled weft.dev/inject=disabled
// (its namespaceSelector and objectSelector, checked by the API server,
// which is why the label form exists: it works while the control plane is
// down). So there the pod's setting can only opt a pod out of a meshed
// namespace. `weft inject` has no namespace to look at: it treats every
// pod as if its namespace were opted in, since asking for injection is the
// opt-in.
//
// # Tuning annotations
//
//   - weft.dev/skip-inbound-ports, weft.dev/skip-outbound-ports: ports,
//     comma-separated, that bypass the proxy;
//   - weft.dev/proxy-cpu: the proxy's CPU request (a quantity; no CPU
//     limit is set, as throttling a proxy adds latency to every request);
//   - weft.dev/proxy-memory: the proxy's memory request and limit, both
//     (memory cannot be reclaimed, so a request below the limit only
//     defers an OOM kill to when the node runs short);
//   - weft.dev/proxy-log-level: debug, info, warn or error.
//
// An invalid value is an error naming the annotation; other annotations
// under weft.dev/ that this package does not know give a warning, which
// the webhook returns to the client.
package inject
