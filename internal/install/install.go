package install

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/install/crds"
)

// Names of the objects Render makes, and the contract with the control
// plane's command line in Kubernetes mode.
const (
	DefaultNamespace = "weft-system"
	// Name is the control plane's ServiceAccount, Deployment, Service,
	// PodDisruptionBudget, RBAC objects and leader-election Lease. The
	// ServiceAccount is the one identity.ControlPlaneServiceAccount names.
	Name = "weft-control-plane"
	// CASecret is where the control plane keeps its CA (it fills the empty
	// Secret Render makes at its first start).
	CASecret = "weft-ca"
	// WebhookSecret holds the webhook's serving certificate.
	WebhookSecret = "weft-webhook-tls"
	// WebhookConfiguration and WebhookName name the injection webhook;
	// WebhookPath is where the control plane serves it.
	WebhookConfiguration = "weft-proxy-injector"
	WebhookName          = "inject.weft.dev"
	WebhookPath          = "/inject"
	// ControlPlaneLabel marks the control plane's pods, which the webhook
	// never mutates.
	ControlPlaneLabel = "weft.dev/control-plane"
	// PartOfLabel is on every object Render makes.
	PartOfLabel = "app.kubernetes.io/part-of"

	// The control plane's ports: proxies (gRPC), the admin API, and the
	// webhook, which the Service serves on 443.
	GRPCPort    = 15010
	AdminPort   = 15011
	WebhookPort = 15017

	// webhookCertDir is where the control plane reads the webhook's
	// serving certificate (tls.crt, tls.key).
	webhookCertDir = "/var/run/weft/webhook"
	// stateDir is the control plane's --state-dir: an emptyDir, since in
	// Kubernetes mode what must survive a restart lives in the API server.
	stateDir = "/var/lib/weft"
	// runAsUser is the control plane's UID, non-root.
	runAsUser = 65532
)

// Options say what to render.
type Options struct {
	// Namespace is the control plane's; DefaultNamespace if empty.
	Namespace string
	// Image is the control plane's (weft), ProxyImage the proxy's, which
	// the webhook injects. Both required.
	Image      string
	ProxyImage string
	// ImagePullPolicy is the cluster's default when empty.
	ImagePullPolicy string
	// Replicas of the control plane; 2 if 0.
	Replicas int32
	// FailurePolicy is the webhook's: Fail (the default) keeps a pod of a
	// meshed namespace from starting outside the mesh while the control
	// plane is down; Ignore lets it start, unmeshed.
	FailurePolicy string
	// TrustDomain of the mesh; inject.DefaultTrustDomain if empty.
	TrustDomain string
	// LogLevel of the control plane and of the proxies it injects.
	LogLevel string
	// CRDs are the sets of CRDs to install; all if nil. A cluster that has
	// Gateway API's or SMI's CRDs from elsewhere leaves those out.
	CRDs []crds.Set
	// Cert is the webhook's serving certificate; nil makes one.
	Cert *CertBundle
	// Now is the time certificates are made and checked at; time.Now if
	// nil.
	Now func() time.Time
}

// withDefaults fills in what was left zero.
func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Replicas == 0 {
		o.Replicas = 2
	}
	if o.FailurePolicy == "" {
		o.FailurePolicy = string(admissionregistrationv1.Fail)
	}
	if o.TrustDomain == "" {
		o.TrustDomain = inject.DefaultTrustDomain
	}
	if o.LogLevel == "" {
		o.LogLevel = inject.DefaultLogLevel
	}
	if o.CRDs == nil {
		o.CRDs = crds.Sets
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

func (o Options) validate() error {
	var errs []error
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("namespace %q: %s", o.Namespace, strings.Join(msgs, "; ")))
	}
	for _, img := range []struct{ flag, v string }{{"image", o.Image}, {"proxy image", o.ProxyImage}} {
		if img.v == "" || strings.ContainsAny(img.v, " \t\n") {
			errs = append(errs, fmt.Errorf("%s %q: want an image reference", img.flag, img.v))
		}
	}
	if o.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas %d: want at least 1", o.Replicas))
	}
	if o.FailurePolicy != string(admissionregistrationv1.Fail) && o.FailurePolicy != string(admissionregistrationv1.Ignore) {
		errs = append(errs, fmt.Errorf("failure policy %q: want Fail or Ignore", o.FailurePolicy))
	}
	for _, s := range o.CRDs {
		if !slices.Contains(crds.Sets, s) {
			errs = append(errs, fmt.Errorf("CRD set %q: want one of %v", s, crds.Sets))
		}
	}
	return errors.Join(errs...)
}

// ServiceHost is the control plane Service's name in the cluster's DNS,
// which proxies dial and the webhook's certificate names.
func ServiceHost(namespace string) string { return Name + "." + namespace + ".svc" }

// injectOptions are what the webhook injects with, so that `weft inject`
// can do the same offline: the proxy dials the control plane Service.
func (o Options) injectOptions() inject.Options {
	return inject.Options{
		ProxyImage:      o.ProxyImage,
		ImagePullPolicy: o.ImagePullPolicy,
		ControlPlane:    net.JoinHostPort(ServiceHost(o.Namespace), strconv.Itoa(GRPCPort)),
		TrustDomain:     o.TrustDomain,
		LogLevel:        o.LogLevel,
	}
}

// InjectOptions are the injection settings of an installation made with
// o, for `weft inject`.
func InjectOptions(o Options) inject.Options { return o.withDefaults().injectOptions() }

// Object is one rendered object.
type Object struct {
	APIVersion, Kind, Namespace, Name string
	// YAML is the object as it is applied.
	YAML []byte
}

// String names the object as kubectl does: kind/name, with its namespace.
func (o Object) String() string {
	s := strings.ToLower(o.Kind) + "/" + o.Name
	if o.Namespace != "" {
		s += " -n " + o.Namespace
	}
	return s
}

// Render returns every object of an installation, in apply order, checked
// by Validate.
func Render(opts Options) ([]Object, error) { return render(opts, true) }

func render(opts Options, validate bool) ([]Object, error) {
	o := opts.withDefaults()
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	if err := o.injectOptions().WithDefaults().Validate(); err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	cert := o.Cert
	if cert == nil {
		var err error
		host := ServiceHost(o.Namespace)
		if cert, err = GenerateCertBundle([]string{host, host + ".cluster.local"}, o.Now()); err != nil {
			return nil, fmt.Errorf("install: %w", err)
		}
	}
	var out []Object
	add := func(obj any) error {
		ob, err := encode(obj)
		if err != nil {
			return fmt.Errorf("install: %w", err)
		}
		out = append(out, ob)
		return nil
	}
	if err := add(namespace(o)); err != nil {
		return nil, err
	}
	files, err := crds.Files(o.CRDs...)
	if err != nil {
		return nil, fmt.Errorf("install: %w", err)
	}
	for _, f := range files {
		c, err := crds.Parse(f.Data)
		if err != nil {
			return nil, fmt.Errorf("install: %s: %w", f.Name, err)
		}
		out = append(out, Object{APIVersion: c.APIVersion, Kind: c.Kind, Name: c.Metadata.Name, YAML: f.Data})
	}
	for _, obj := range []any{
		serviceAccount(o), clusterRole(o), clusterRoleBinding(o), role(o), roleBinding(o),
		caSecret(o), lease(o), webhookSecret(o, cert), service(o), deployment(o), pdb(o), webhook(o, cert),
	} {
		if err := add(obj); err != nil {
			return nil, err
		}
	}
	if validate {
		if err := Validate(out, o.Now()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// encode writes a typed object as YAML, without the status and null
// creation timestamps Go's encoding of the types leaves: what is applied
// is desired state only.
func encode(obj any) (Object, error) {
	js, err := json.Marshal(obj)
	if err != nil {
		return Object{}, err
	}
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return Object{}, err
	}
	prune(m)
	delete(m, "status")
	y, err := yaml.Marshal(m)
	if err != nil {
		return Object{}, err
	}
	meta, _ := m["metadata"].(map[string]any)
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	return Object{APIVersion: str(m, "apiVersion"), Kind: str(m, "kind"), Namespace: str(meta, "namespace"), Name: str(meta, "name"), YAML: y}, nil
}

// prune removes null members, recursively.
func prune(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if e == nil {
				delete(v, k)
				continue
			}
			prune(e)
		}
	case []any:
		for _, e := range v {
			prune(e)
		}
	}
}

// YAML joins objects into one multi-document stream.
func YAML(objs []Object) []byte {
	var b bytes.Buffer
	for i, o := range objs {
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(o.YAML)
		if !bytes.HasSuffix(o.YAML, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func commonLabels() map[string]string { return map[string]string{PartOfLabel: "weft"} }

// podLabels are the control plane pods'; selector is the part that
// selects them.
func podLabels() map[string]string {
	return map[string]string{"app.kubernetes.io/name": Name, PartOfLabel: "weft", ControlPlaneLabel: "true"}
}

func selector() map[string]string { return map[string]string{"app.kubernetes.io/name": Name} }

func meta(o Options, name string, namespaced bool) metav1.ObjectMeta {
	m := metav1.ObjectMeta{Name: name, Labels: commonLabels()}
	if namespaced {
		m.Namespace = o.Namespace
	}
	return m
}

func namespace(o Options) *corev1.Namespace {
	return &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: meta(o, o.Namespace, false),
	}
}

func serviceAccount(o Options) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceAccount"},
		ObjectMeta: meta(o, Name, true),
	}
}

// readVerbs are all an informer needs.
var readVerbs = []string{"list", "watch"}

// policyResources are weft's kinds the control plane reads (Workloads are
// for registrations outside the cluster: it does not).
var policyResources = []string{"authorizationpolicies", "retrypolicies", "faultpolicies", "circuitbreakerpolicies", "ratelimitpolicies"}

func clusterRole(o Options) *rbacv1.ClusterRole {
	var status []string
	for _, r := range policyResources {
		status = append(status, r+"/status")
	}
	return &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: meta(o, Name, false),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"namespaces", "services", "pods", "serviceaccounts"}, Verbs: readVerbs},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: readVerbs},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes", "grpcroutes"}, Verbs: readVerbs},
			{APIGroups: []string{"split.smi-spec.io"}, Resources: []string{"trafficsplits"}, Verbs: readVerbs},
			{APIGroups: []string{"specs.smi-spec.io"}, Resources: []string{"httproutegroups", "tcproutes"}, Verbs: readVerbs},
			{APIGroups: []string{"access.smi-spec.io"}, Resources: []string{"traffictargets"}, Verbs: readVerbs},
			{APIGroups: []string{"weft.dev"}, Resources: policyResources, Verbs: readVerbs},
			// What the control plane made of each route and policy.
			{APIGroups: []string{"weft.dev"}, Resources: status, Verbs: []string{"update", "patch"}},
			{APIGroups: []string{"gateway.networking.k8s.io"}, Resources: []string{"httproutes/status", "grpcroutes/status"}, Verbs: []string{"update", "patch"}},
			// Route and policy kinds are read as soon as their CRDs are
			// established, not at the next poll of discovery.
			{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"list", "watch"}},
			// Proxies prove their pod's service account with a projected
			// token, which the control plane has the API server check.
			{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
			// Why the webhook left a pod alone, on the pod's owner.
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
			// The mesh's trust bundle, ConfigMap inject.CABundleConfigMap,
			// which the leader keeps in every namespace of the mesh for the
			// proxies to mount: that name only, in any namespace (the
			// namespaces come and go). Its list and watch select the name
			// with a field selector, which RBAC checks as the name; create
			// cannot be narrowed to a name (a create request names no
			// object until it is decoded).
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{inject.CABundleConfigMap}, Verbs: []string{"get", "list", "watch", "update"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
		},
	}
}

func clusterRoleBinding(o Options) *rbacv1.ClusterRoleBinding {
	return &rbacv1.ClusterRoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRoleBinding"},
		ObjectMeta: meta(o, Name, false),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: o.Namespace}},
	}
}

// role grants, in the control plane's namespace, what it writes: its CA
// and its leader-election Lease, by name. Both are rendered (empty) so
// the control plane needs no create, which RBAC cannot limit to a name.
func role(o Options) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: meta(o, Name, true),
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{CASecret}, Verbs: []string{"get", "update"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{Name}, Verbs: []string{"get", "update"}},
		},
	}
}

func roleBinding(o Options) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: meta(o, Name, true),
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: Name, Namespace: o.Namespace}},
	}
}

// caSecret is empty: the control plane writes its CA into it at its first
// start. Applying it again (an upgrade) leaves that data alone, since
// the applied object names none.
func caSecret(o Options) *corev1.Secret {
	m := meta(o, CASecret, true)
	m.Annotations = map[string]string{"weft.dev/description": "the mesh's CA, written by the control plane at its first start; deleting it makes a new root, which every proxy must then learn"}
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: m,
		Type:       corev1.SecretTypeOpaque,
	}
}

// lease is the control plane's leader-election lock, empty until a
// replica takes it.
func lease(o Options) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		TypeMeta:   metav1.TypeMeta{APIVersion: "coordination.k8s.io/v1", Kind: "Lease"},
		ObjectMeta: meta(o, Name, true),
	}
}

func webhookSecret(o Options, c *CertBundle) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: meta(o, WebhookSecret, true),
		Type:       corev1.SecretTypeTLS,
		Data:       map[string][]byte{"ca.crt": c.CA, corev1.TLSCertKey: c.Cert, corev1.TLSPrivateKeyKey: c.Key},
	}
}

func service(o Options) *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
		ObjectMeta: meta(o, Name, true),
		Spec: corev1.ServiceSpec{
			Selector: selector(),
			Ports: []corev1.ServicePort{
				{Name: "grpc", Port: GRPCPort, TargetPort: intstr.FromString("grpc"), AppProtocol: ptr("grpc")},
				{Name: "admin", Port: AdminPort, TargetPort: intstr.FromString("admin"), AppProtocol: ptr("http")},
				{Name: "webhook", Port: 443, TargetPort: intstr.FromString("webhook")},
			},
		},
	}
}

// ControlPlaneArgs is the control plane's command line in the cluster.
// Each flag is one `weft control` must accept; the tests hold it to that.
func ControlPlaneArgs(o Options) []string {
	o = o.withDefaults()
	inj := o.injectOptions()
	return []string{
		"control",
		"--kubernetes",
		"--namespace=$(POD_NAMESPACE)",
		"--grpc-addr=:" + strconv.Itoa(GRPCPort),
		"--admin-addr=:" + strconv.Itoa(AdminPort),
		"--webhook-addr=:" + strconv.Itoa(WebhookPort),
		"--webhook-cert-dir=" + webhookCertDir,
		"--webhook-failure-policy=" + o.FailurePolicy,
		"--proxy-image=" + o.ProxyImage,
		"--proxy-control-plane=" + inj.ControlPlane,
		"--trust-domain=" + o.TrustDomain,
		"--ca-secret=" + CASecret,
		"--leader-election-lease=" + Name,
		"--state-dir=" + stateDir,
		"--log-level=" + o.LogLevel,
		"--log-format=json",
	}
}

func deployment(o Options) *appsv1.Deployment {
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	probe := func(path string, period int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("admin"), Scheme: corev1.URISchemeHTTP}},
			PeriodSeconds:    period,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
		}
	}
	maxUnavailable, maxSurge := intstr.FromInt32(0), intstr.FromInt32(1)
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: meta(o, Name, true),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(o.Replicas),
			Selector: &metav1.LabelSelector{MatchLabels: selector()},
			// One new replica up before an old one goes: with the
			// PodDisruptionBudget, an upgrade never leaves the webhook and
			// the proxies' control plane without a ready replica.
			Strategy: appsv1.DeploymentStrategy{
				Type:          appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{MaxUnavailable: &maxUnavailable, MaxSurge: &maxSurge},
			},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels()},
				Spec: corev1.PodSpec{
					ServiceAccountName: Name,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr(true),
						RunAsUser:      ptr(int64(runAsUser)),
						RunAsGroup:     ptr(int64(runAsUser)),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					// Preferred, not required, so a one-node cluster still
					// runs every replica.
					Affinity: &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
						PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
							Weight: 100,
							PodAffinityTerm: corev1.PodAffinityTerm{
								LabelSelector: &metav1.LabelSelector{MatchLabels: selector()},
								TopologyKey:   "kubernetes.io/hostname",
							},
						}},
					}},
					Containers: []corev1.Container{{
						Name:            "control-plane",
						Image:           o.Image,
						ImagePullPolicy: corev1.PullPolicy(o.ImagePullPolicy),
						Args:            ControlPlaneArgs(o),
						Env:             []corev1.EnvVar{fieldEnv("POD_NAME", "metadata.name"), fieldEnv("POD_NAMESPACE", "metadata.namespace")},
						Ports: []corev1.ContainerPort{
							{Name: "grpc", ContainerPort: GRPCPort, Protocol: corev1.ProtocolTCP},
							{Name: "admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
							{Name: "webhook", ContainerPort: WebhookPort, Protocol: corev1.ProtocolTCP},
						},
						ReadinessProbe: probe("/ready", 5),
						LivenessProbe:  probe("/live", 10),
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
						},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr(false),
							ReadOnlyRootFilesystem:   ptr(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "webhook-tls", MountPath: webhookCertDir, ReadOnly: true},
							{Name: "state", MountPath: stateDir},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "webhook-tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: WebhookSecret}}},
						{Name: "state", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func pdb(o Options) *policyv1.PodDisruptionBudget {
	minAvailable := intstr.FromInt32(1)
	return &policyv1.PodDisruptionBudget{
		TypeMeta:   metav1.TypeMeta{APIVersion: "policy/v1", Kind: "PodDisruptionBudget"},
		ObjectMeta: meta(o, Name, true),
		Spec: policyv1.PodDisruptionBudgetSpec{
			MinAvailable: &minAvailable,
			Selector:     &metav1.LabelSelector{MatchLabels: selector()},
			// A replica that is not running helps no one: a drain may
			// evict it even when the budget is spent.
			UnhealthyPodEvictionPolicy: ptr(policyv1.AlwaysAllow),
		},
	}
}

func webhook(o Options, c *CertBundle) *admissionregistrationv1.MutatingWebhookConfiguration {
	failure := admissionregistrationv1.FailurePolicyType(o.FailurePolicy)
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: meta(o, WebhookConfiguration, false),
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: WebhookName,
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				Service:  &admissionregistrationv1.ServiceReference{Namespace: o.Namespace, Name: Name, Path: ptr(WebhookPath), Port: ptr(int32(443))},
				CABundle: c.CA,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
					Scope: ptr(admissionregistrationv1.NamespacedScope),
				},
			}},
			FailurePolicy: &failure,
			MatchPolicy:   ptr(admissionregistrationv1.Equivalent),
			// Only opted-in namespaces, and never the control plane's own
			// or Kubernetes' system namespaces, even if labelled.
			NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{inject.InjectKey: inject.Enabled},
				MatchExpressions: []metav1.LabelSelectorRequirement{{
					Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn,
					Values: []string{o.Namespace, "kube-system", "kube-public", "kube-node-lease"},
				}},
			},
			// The API server itself skips pods labelled out and the control
			// plane's, so they start even when the webhook is down.
			ObjectSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: inject.InjectKey, Operator: metav1.LabelSelectorOpNotIn, Values: []string{inject.Disabled}},
				{Key: ControlPlaneLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
			}},
			SideEffects:             ptr(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr(int32(10)),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr(admissionregistrationv1.NeverReinvocationPolicy),
		}},
	}
}

func ptr[T any](v T) *T { return &v }
