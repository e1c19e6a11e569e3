package install

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/weftmesh/weft/internal/install/crds"
)

// scheme knows the built-in kinds an installation has.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, policyv1.AddToScheme,
		coordinationv1.AddToScheme, admissionregistrationv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err) // the k8s.io/api groups always register
		}
	}
	return s
}()

// decoder decodes YAML strictly: unknown and duplicate fields are errors,
// as kubectl apply's server-side field validation makes them.
var decoder = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, scheme, scheme, kjson.SerializerOptions{Yaml: true, Strict: true})

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// decoded is an installation, decoded and indexed.
type decoded struct {
	objs map[string]runtime.Object // by kind/namespace/name
	crds map[string]*crds.CRD
}

func key(kind, namespace, name string) string { return kind + "/" + namespace + "/" + name }

func (d *decoded) has(kind, namespace, name string) bool {
	_, ok := d.objs[key(kind, namespace, name)]
	return ok
}

// Validate checks a rendered installation before anyone applies it: each
// object decodes with the Kubernetes types (CRDs with crds.Parse) and
// passes the checks the API server makes of names, and the references
// between them hold: RBAC subjects and roles, the Deployment's
// ServiceAccount and Secrets, the Service's and the budget's selectors,
// the webhook's Service and port, and its certificate, which must be
// valid at now for the Service's name and match the caBundle.
func Validate(objs []Object, now time.Time) error {
	d := &decoded{objs: map[string]runtime.Object{}, crds: map[string]*crds.CRD{}}
	var errs []error
	fail := func(o Object, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", o, fmt.Sprintf(format, args...)))
	}
	for _, o := range objs {
		if d.objs[key(o.Kind, o.Namespace, o.Name)] != nil || o.Kind == crdGVK.Kind && d.crds[o.Name] != nil {
			fail(o, "rendered twice")
			continue
		}
		var name, namespace string
		var obj runtime.Object
		if o.APIVersion == crdGVK.GroupVersion().String() && o.Kind == crdGVK.Kind {
			c, err := crds.Parse(o.YAML)
			if err == nil {
				err = c.Validate()
			}
			if err != nil {
				fail(o, "%v", err)
				continue
			}
			d.crds[o.Name] = c
			name = c.Metadata.Name
		} else {
			var gvk *schema.GroupVersionKind
			var err error
			obj, gvk, err = decoder.Decode(o.YAML, nil, nil)
			if err != nil {
				fail(o, "does not decode as a Kubernetes object: %v", err)
				continue
			}
			if gvk.Kind != o.Kind || gvk.GroupVersion().String() != o.APIVersion {
				fail(o, "decodes as %s", gvk)
				continue
			}
			m, err := apimeta.Accessor(obj)
			if err != nil {
				fail(o, "%v", err)
				continue
			}
			name, namespace = m.GetName(), m.GetNamespace()
		}
		if name != o.Name || namespace != o.Namespace {
			fail(o, "its YAML names %s/%s", namespace, name)
			continue
		}
		for _, msg := range nameProblems(o.Kind, name) {
			fail(o, "metadata.name: %s", msg)
		}
		if obj != nil {
			d.objs[key(o.Kind, o.Namespace, o.Name)] = obj
		}
	}
	for _, o := range objs {
		obj := d.objs[key(o.Kind, o.Namespace, o.Name)]
		if obj == nil {
			continue
		}
		for _, p := range d.references(obj, now) {
			fail(o, "%s", p)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("install: the rendered objects are not valid: %w", errors.Join(errs...))
	}
	return nil
}

// nameProblems checks a name as the API server checks its kind's names.
func nameProblems(kind, name string) []string {
	switch kind {
	case "Namespace", "Service":
		return validation.IsDNS1123Label(name)
	case "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
		// RBAC names are path segments: anything but / and %.
		if name == "" || strings.ContainsAny(name, "/%") {
			return []string{"not a valid RBAC name"}
		}
		return nil
	}
	return validation.IsDNS1123Subdomain(name)
}

// references lists what obj refers to that the installation lacks.
func (d *decoded) references(obj runtime.Object, now time.Time) []string {
	var out []string
	missing := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	checkSubjects := func(subjects []rbacv1.Subject) {
		for _, s := range subjects {
			if s.Kind != "ServiceAccount" || !d.has("ServiceAccount", s.Namespace, s.Name) {
				missing("subject %s %s/%s is not in the installation", s.Kind, s.Namespace, s.Name)
			}
		}
	}
	switch o := obj.(type) {
	case *corev1.Namespace:
	case *rbacv1.ClusterRoleBinding:
		checkSubjects(o.Subjects)
		if o.RoleRef.Kind != "ClusterRole" || !d.has("ClusterRole", "", o.RoleRef.Name) {
			missing("roleRef %s %s is not in the installation", o.RoleRef.Kind, o.RoleRef.Name)
		}
	case *rbacv1.RoleBinding:
		checkSubjects(o.Subjects)
		if o.RoleRef.Kind != "Role" || !d.has("Role", o.Namespace, o.RoleRef.Name) {
			missing("roleRef %s %s is not in the installation", o.RoleRef.Kind, o.RoleRef.Name)
		}
	case *rbacv1.ClusterRole:
		out = append(out, leastPrivilege(o.Rules)...)
	case *rbacv1.Role:
		out = append(out, leastPrivilege(o.Rules)...)
		for _, r := range o.Rules {
			// A Role's named objects are the installation's own.
			for _, name := range r.ResourceNames {
				kind := map[string]string{"secrets": "Secret", "leases": "Lease"}[r.Resources[0]]
				if !d.has(kind, o.Namespace, name) {
					missing("grants %s %s, which is not in the installation", r.Resources[0], name)
				}
			}
		}
	case *appsv1.Deployment:
		pod := o.Spec.Template
		sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
		if err != nil || !sel.Matches(labels.Set(pod.Labels)) {
			missing("spec.selector does not select its own pod template")
		}
		if !d.has("ServiceAccount", o.Namespace, pod.Spec.ServiceAccountName) {
			missing("serviceAccountName %s is not in the installation", pod.Spec.ServiceAccountName)
		}
		for _, v := range pod.Spec.Volumes {
			if v.Secret != nil && !d.has("Secret", o.Namespace, v.Secret.SecretName) {
				missing("volume %s: Secret %s is not in the installation", v.Name, v.Secret.SecretName)
			}
		}
	case *corev1.Service:
		if d.podsSelectedBy(o.Namespace, labels.SelectorFromSet(o.Spec.Selector)) == nil {
			missing("spec.selector selects no pod template of the installation")
		}
		for _, p := range o.Spec.Ports {
			if d.containerPort(o.Namespace, labels.SelectorFromSet(o.Spec.Selector), p.TargetPort.StrVal) == 0 && p.TargetPort.StrVal != "" {
				missing("port %s: targetPort %s is no container port of the pods it selects", p.Name, p.TargetPort.StrVal)
			}
		}
	case *policyv1.PodDisruptionBudget:
		sel, err := metav1.LabelSelectorAsSelector(o.Spec.Selector)
		if err != nil || d.podsSelectedBy(o.Namespace, sel) == nil {
			missing("spec.selector selects no pod template of the installation")
		}
	case *admissionregistrationv1.MutatingWebhookConfiguration:
		for _, w := range o.Webhooks {
			out = append(out, d.webhookProblems(w, now)...)
		}
	}
	return out
}

// leastPrivilege refuses wildcards and the verbs that change cluster-wide
// state but for the few the control plane needs.
func leastPrivilege(rules []rbacv1.PolicyRule) []string {
	var out []string
	for i, r := range rules {
		for _, list := range [][]string{r.APIGroups, r.Resources, r.Verbs} {
			if slices.Contains(list, "*") {
				out = append(out, fmt.Sprintf("rules[%d]: a wildcard grants more than the control plane needs", i))
			}
		}
		for _, v := range r.Verbs {
			if v == "delete" || v == "deletecollection" || v == "escalate" || v == "bind" || v == "impersonate" {
				out = append(out, fmt.Sprintf("rules[%d]: the control plane never needs %s", i, v))
			}
		}
	}
	return out
}

// podsSelectedBy returns the first pod template of the installation, in
// namespace ns, that sel selects.
func (d *decoded) podsSelectedBy(ns string, sel labels.Selector) *corev1.PodTemplateSpec {
	for _, obj := range d.objs {
		if dep, ok := obj.(*appsv1.Deployment); ok && dep.Namespace == ns && sel.Matches(labels.Set(dep.Spec.Template.Labels)) {
			return &dep.Spec.Template
		}
	}
	return nil
}

// containerPort is the number of the named port of the pods sel selects,
// or 0.
func (d *decoded) containerPort(ns string, sel labels.Selector, name string) int32 {
	pod := d.podsSelectedBy(ns, sel)
	if pod == nil {
		return 0
	}
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
	}
	return 0
}

func (d *decoded) webhookProblems(w admissionregistrationv1.MutatingWebhook, now time.Time) []string {
	var out []string
	ref := w.ClientConfig.Service
	if ref == nil {
		return []string{fmt.Sprintf("webhook %s: calls no Service", w.Name)}
	}
	svcObj := d.objs[key("Service", ref.Namespace, ref.Name)]
	svc, ok := svcObj.(*corev1.Service)
	if !ok {
		return []string{fmt.Sprintf("webhook %s: Service %s/%s is not in the installation", w.Name, ref.Namespace, ref.Name)}
	}
	port := int32(443)
	if ref.Port != nil {
		port = *ref.Port
	}
	served := false
	for _, p := range svc.Spec.Ports {
		if p.Port == port && d.containerPort(svc.Namespace, labels.SelectorFromSet(svc.Spec.Selector), p.TargetPort.StrVal) != 0 {
			served = true
		}
	}
	if !served {
		out = append(out, fmt.Sprintf("webhook %s: Service %s/%s serves no port %d backed by a container port", w.Name, ref.Namespace, ref.Name, port))
	}
	if w.SideEffects == nil || *w.SideEffects != admissionregistrationv1.SideEffectClassNone {
		out = append(out, fmt.Sprintf("webhook %s: sideEffects must be None: the webhook writes nothing", w.Name))
	}
	if !slices.Contains(w.AdmissionReviewVersions, "v1") {
		out = append(out, fmt.Sprintf("webhook %s: admissionReviewVersions must include v1", w.Name))
	}
	// The certificate the control plane serves must be the one the API
	// server is told to trust, for the name it dials.
	var secret *corev1.Secret
	for _, obj := range d.objs {
		if s, ok := obj.(*corev1.Secret); ok && s.Type == corev1.SecretTypeTLS && s.Namespace == ref.Namespace {
			secret = s
		}
	}
	if secret == nil {
		return append(out, fmt.Sprintf("webhook %s: no serving certificate Secret in %s", w.Name, ref.Namespace))
	}
	bundle := &CertBundle{CA: w.ClientConfig.CABundle, Cert: secret.Data[corev1.TLSCertKey], Key: secret.Data[corev1.TLSPrivateKeyKey]}
	if err := bundle.Verify(ref.Name+"."+ref.Namespace+".svc", now); err != nil {
		out = append(out, fmt.Sprintf("webhook %s: caBundle and Secret %s: %v", w.Name, secret.Name, err))
	}
	return out
}
