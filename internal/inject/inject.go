package inject

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/appprobe"
	"github.com/weftmesh/weft/internal/manifest"
)

// Names of what injection adds to a pod.
const (
	ProxyContainerName = manifest.ProxyContainer
	InitContainerName  = "weft-init"
	IdentityVolumeName = "weft-identity"
	// IdentityMountPath holds the projected token, file "token".
	IdentityMountPath = "/var/run/secrets/weft.dev/serviceaccount"
	identityTokenFile = "token"
	// CABundleConfigMap, in every namespace of the mesh, holds the mesh's
	// trust bundle under CABundleKey; the control plane's leader keeps it
	// current and the proxy mounts it (volume CABundleVolumeName, at
	// CABundleMountPath), since a service account token does not pin the
	// control plane's CA as a join token does.
	CABundleConfigMap  = "weft-ca-bundle"
	CABundleKey        = "ca.crt"
	CABundleVolumeName = "weft-ca-bundle"
	CABundleMountPath  = "/var/run/secrets/weft.dev/ca"
	// Port names on the sidecar, by which the control plane finds the
	// proxy's admin and mesh ports (internal/manifest's WorkloadFromPod).
	adminPortName   = manifest.ProxyAdminPortName
	inboundPortName = manifest.ProxyInboundPortName
)

// Result says what injection did to a pod.
type Result struct {
	// Injected is set when the pod was changed.
	Injected bool
	// Reason says why it was or was not.
	Reason string
	// Warnings are for the pod's author: settings with no effect, or why
	// an opted-in pod was left alone.
	Warnings []string
}

// AlreadyInjected reports whether a pod spec already has weft's proxy, as
// a native sidecar or (from an older injector or by hand) as a container.
func AlreadyInjected(spec *corev1.PodSpec) bool {
	return hasContainer(spec.InitContainers, ProxyContainerName) || hasContainer(spec.Containers, ProxyContainerName)
}

// Pod returns a meshed copy of pod, or an unchanged copy when it is not
// to be meshed (Result says why). nsLabels are the labels of the pod's
// namespace (nil when unknown). pod itself is never modified.
func Pod(pod *corev1.Pod, nsLabels map[string]string, o Options) (*corev1.Pod, Result, error) {
	tmpl := &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec}
	out, res, err := Template(tmpl, nsLabels, o)
	if err != nil {
		return nil, Result{}, err
	}
	p := pod.DeepCopy()
	p.ObjectMeta, p.Spec = out.ObjectMeta, out.Spec
	return p, res, nil
}

// Template returns a meshed copy of a pod template (a Pod's metadata and
// spec, or a workload's spec.template), as Pod does.
func Template(in *corev1.PodTemplateSpec, nsLabels map[string]string, o Options) (*corev1.PodTemplateSpec, Result, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, Result{}, fmt.Errorf("injection options: %w", err)
	}
	out := in.DeepCopy()
	if AlreadyInjected(&out.Spec) {
		return out, Result{Reason: "already injected: it has a " + ProxyContainerName + " container"}, nil
	}
	d, err := Decide(out.Annotations, out.Labels, nsLabels)
	if err != nil {
		return nil, Result{}, err
	}
	if !d.Inject {
		return out, Result{Reason: d.Reason}, nil
	}
	if out.Spec.HostNetwork {
		reason := "not injected: the pod uses the host's network, whose iptables rules weft must not change"
		return out, Result{Reason: reason, Warnings: []string{reason}}, nil
	}
	tuning, warnings, err := ParseTuning(out.Annotations)
	if err != nil {
		return nil, Result{}, err
	}
	if err := checkSkipped(out.Annotations, tuning, o); err != nil {
		return nil, Result{}, err
	}
	if err := checkConflicts(&out.Spec, o); err != nil {
		return nil, Result{}, err
	}
	probes, probeWarnings := moveAppProbes(&out.Spec, o, tuning)
	warnings = append(warnings, probeWarnings...)
	out.Spec.InitContainers = append([]corev1.Container{initContainer(o, tuning), proxyContainer(o, tuning, probes)}, out.Spec.InitContainers...)
	out.Spec.Volumes = append(out.Spec.Volumes, identityVolume(o), caBundleVolume())
	return out, Result{Injected: true, Reason: d.Reason, Warnings: warnings}, nil
}

// checkSkipped refuses skipping the proxy's transparent ports: a
// connection reaching one without a redirect has no destination to
// recover, and `weft-proxy init` refuses such a list.
func checkSkipped(annotations map[string]string, t Tuning, o Options) error {
	var errs []error
	for _, l := range []struct {
		key   string
		ports []int32
	}{{SkipInboundPortsAnnotation, t.SkipInboundPorts}, {SkipOutboundPortsAnnotation, t.SkipOutboundPorts}} {
		for _, p := range l.ports {
			if p == o.InboundPort || p == o.OutboundPort {
				errs = append(errs, &AnnotationError{Key: l.key, Value: annotations[l.key],
					Msg: fmt.Sprintf("port %d is one of the proxy's transparent ports (%d, %d), which cannot be skipped", p, o.InboundPort, o.OutboundPort)})
			}
		}
	}
	return errors.Join(errs...)
}

// checkConflicts refuses pods that injection would break, or that would
// silently escape the mesh.
func checkConflicts(spec *corev1.PodSpec, o Options) error {
	var errs []error
	if hasContainer(spec.InitContainers, InitContainerName) || hasContainer(spec.Containers, InitContainerName) {
		errs = append(errs, fmt.Errorf("the pod already has a container named %s", InitContainerName))
	}
	for _, v := range spec.Volumes {
		if v.Name == IdentityVolumeName || v.Name == CABundleVolumeName {
			errs = append(errs, fmt.Errorf("the pod already has a volume named %s", v.Name))
		}
	}
	proxyPorts := map[int32]string{o.MeshPort: "mesh port", o.InboundPort: "inbound port", o.OutboundPort: "outbound port", o.AdminPort: "admin port"}
	var podUID *int64
	if spec.SecurityContext != nil {
		podUID = spec.SecurityContext.RunAsUser
	}
	for _, c := range append(append([]corev1.Container(nil), spec.InitContainers...), spec.Containers...) {
		uid := podUID
		if c.SecurityContext != nil && c.SecurityContext.RunAsUser != nil {
			uid = c.SecurityContext.RunAsUser
		}
		// The init step exempts the proxy's UID from redirection: an app
		// running as it would bypass the mesh without a word.
		if uid != nil && *uid == o.ProxyUID {
			errs = append(errs, fmt.Errorf("container %s runs as UID %d, the proxy's: its traffic would bypass the proxy", c.Name, o.ProxyUID))
		}
		for _, p := range c.Ports {
			if what, clash := proxyPorts[p.ContainerPort]; clash {
				errs = append(errs, fmt.Errorf("container %s listens on port %d, the proxy's %s", c.Name, p.ContainerPort, what))
			}
		}
	}
	return errors.Join(errs...)
}

func hasContainer(cs []corev1.Container, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// initContainer runs `weft-proxy init` (see the package comment for its
// flags). It needs root with NET_ADMIN and NET_RAW to write the pod's
// iptables rules, and nothing else; its root file system stays writable
// because iptables takes its lock under /run.
func initContainer(o Options, t Tuning) corev1.Container {
	args := []string{
		"init",
		"--proxy-uid=" + strconv.FormatInt(o.ProxyUID, 10),
		"--inbound-port=" + itoa(o.InboundPort),
		"--outbound-port=" + itoa(o.OutboundPort),
		// Never redirected: mesh traffic, the kubelet's probes and the
		// control plane's scrapes reach the proxy as they are.
		"--mesh-port=" + itoa(o.MeshPort),
		"--admin-port=" + itoa(o.AdminPort),
	}
	if len(t.SkipInboundPorts) > 0 {
		args = append(args, "--skip-inbound-ports="+joinPorts(t.SkipInboundPorts))
	}
	if len(t.SkipOutboundPorts) > 0 {
		args = append(args, "--skip-outbound-ports="+joinPorts(t.SkipOutboundPorts))
	}
	if o.IPv6 {
		args = append(args, "--ipv6")
	}
	return corev1.Container{
		Name:            InitContainerName,
		Image:           o.ProxyImage,
		ImagePullPolicy: corev1.PullPolicy(o.ImagePullPolicy),
		Args:            args,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(0)),
			RunAsGroup:               ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(false),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// proxyContainer is the native sidecar: an init container the kubelet
// restarts (restartPolicy Always) and keeps running beside the app.
func proxyContainer(o Options, t Tuning, probes appprobe.Set) corev1.Container {
	logLevel := o.LogLevel
	if t.LogLevel != "" {
		logLevel = t.LogLevel
	}
	cpu, memReq, memLimit := o.ProxyCPU.DeepCopy(), o.ProxyMemory.DeepCopy(), o.ProxyMemoryLimit.DeepCopy()
	if t.CPU != nil {
		cpu = t.CPU.DeepCopy()
	}
	if t.Memory != nil {
		memReq, memLimit = t.Memory.DeepCopy(), t.Memory.DeepCopy()
	}
	probe := func(path string, period, failures int32) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: path, Port: intstr.FromString(adminPortName), Scheme: corev1.URISchemeHTTP,
			}},
			PeriodSeconds:    period,
			TimeoutSeconds:   1,
			FailureThreshold: failures,
		}
	}
	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}}
	}
	args := []string{
		"--control-plane=" + o.ControlPlane,
		// Expanded by the kubelet from the env below.
		"--workload=$(POD_NAMESPACE)/$(POD_NAME)",
		"--trust-domain=" + o.TrustDomain,
		"--transparent",
		"--transparent-inbound-port=" + itoa(o.InboundPort),
		"--transparent-outbound-port=" + itoa(o.OutboundPort),
		"--admin=:" + itoa(o.AdminPort),
		"--log-level=" + logLevel,
		"--log-format=json",
		"--token-file=" + IdentityMountPath + "/" + identityTokenFile,
		"--ca-file=" + CABundleMountPath + "/" + CABundleKey,
	}
	if len(probes) > 0 {
		args = append(args,
			// The kubelet expands $(VAR) in args and turns $$ into $: a
			// probe's own $ must come through as it is.
			"--app-probes="+strings.ReplaceAll(probes.Encode(), "$", "$$"),
			// Where the kubelet would have sent them.
			"--app-probe-address=$(POD_IP)")
	}
	return corev1.Container{
		Name:            ProxyContainerName,
		Image:           o.ProxyImage,
		ImagePullPolicy: corev1.PullPolicy(o.ImagePullPolicy),
		RestartPolicy:   ptr(corev1.ContainerRestartPolicyAlways),
		Args:            args,
		Env: []corev1.EnvVar{
			fieldEnv("POD_NAME", "metadata.name"),
			fieldEnv("POD_NAMESPACE", "metadata.namespace"),
			fieldEnv("POD_IP", "status.podIP"),
		},
		Ports: []corev1.ContainerPort{
			{Name: adminPortName, ContainerPort: o.AdminPort, Protocol: corev1.ProtocolTCP},
			{Name: inboundPortName, ContainerPort: o.MeshPort, Protocol: corev1.ProtocolTCP},
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: cpu, corev1.ResourceMemory: memReq},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: memLimit},
		},
		// The app starts once this passes: the proxy holds a certificate
		// and a config. Two minutes covers a control plane restarting.
		StartupProbe:   probe("/ready", 1, 120),
		ReadinessProbe: probe("/ready", 5, 3),
		LivenessProbe:  probe("/live", 10, 3),
		VolumeMounts: []corev1.VolumeMount{
			{Name: IdentityVolumeName, MountPath: IdentityMountPath, ReadOnly: true},
			{Name: CABundleVolumeName, MountPath: CABundleMountPath, ReadOnly: true},
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(o.ProxyUID),
			RunAsGroup:               ptr(o.ProxyUID),
			RunAsNonRoot:             ptr(true),
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
}

// identityVolume is the projected token the proxy proves its pod's service
// account with; the kubelet renews it before it expires.
func identityVolume(o Options) corev1.Volume {
	return corev1.Volume{
		Name: IdentityVolumeName,
		VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          o.TokenAudience,
				ExpirationSeconds: ptr(o.TokenExpiration),
				Path:              identityTokenFile,
			}}},
		}},
	}
}

// caBundleVolume is the mesh's trust bundle. It is not optional: a proxy
// without it cannot trust the control plane, so the pod had better wait
// (the kubelet retries) until the control plane has written it.
func caBundleVolume() corev1.Volume {
	return corev1.Volume{
		Name: CABundleVolumeName,
		VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: CABundleConfigMap},
			Items:                []corev1.KeyToPath{{Key: CABundleKey, Path: CABundleKey}},
		}},
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

func ptr[T any](v T) *T { return &v }
