package inject

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/appprobe"
	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/testutil/expand"
)

func testPod(annotations, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Namespace: "shop", Annotations: annotations, Labels: labels},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "migrate", Image: "app:1"}},
			Containers:     []corev1.Container{{Name: "app", Image: "app:1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}},
		},
	}
}

func TestDecide(t *testing.T) {
	on := map[string]string{InjectKey: Enabled}
	off := map[string]string{InjectKey: Disabled}
	for _, tc := range []struct {
		name                string
		ann, labels, ns     map[string]string
		inject              bool
		errKey, errContains string
	}{
		{name: "namespace opts in", ns: on, inject: true},
		{name: "nothing opts in", ns: nil, inject: false},
		{name: "namespace label other than enabled", ns: map[string]string{InjectKey: "yes"}, inject: false},
		{name: "pod annotation opts out of a meshed namespace", ann: off, ns: on, inject: false},
		{name: "pod label opts out of a meshed namespace", labels: off, ns: on, inject: false},
		{name: "pod annotation opts in where the namespace does not", ann: on, inject: true},
		{name: "pod label opts in", labels: on, inject: true},
		{name: "pod annotation wins over a namespace opted out", ann: on, ns: off, inject: true},
		{name: "annotation and label agree", ann: off, labels: off, ns: on, inject: false},
		{name: "annotation and label disagree", ann: on, labels: off, ns: on, errKey: InjectKey, errContains: "must agree"},
		{name: "bad annotation value", ann: map[string]string{InjectKey: "true"}, ns: on, errKey: InjectKey, errContains: "pod annotation: want enabled or disabled"},
		{name: "bad label value", labels: map[string]string{InjectKey: "on"}, errKey: InjectKey, errContains: "pod label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Decide(tc.ann, tc.labels, tc.ns)
			if tc.errKey != "" {
				var ae *AnnotationError
				if !errors.As(err, &ae) || ae.Key != tc.errKey || !strings.Contains(err.Error(), tc.errContains) {
					t.Fatalf("got %v, want an error for %s containing %q", err, tc.errKey, tc.errContains)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Inject != tc.inject || d.Reason == "" {
				t.Errorf("got %+v, want inject=%v with a reason", d, tc.inject)
			}
		})
	}
}

func TestPodInjects(t *testing.T) {
	in := testPod(nil, nil)
	before := in.DeepCopy()
	out, res, err := Pod(in, map[string]string{InjectKey: Enabled}, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, before) {
		t.Error("Pod modified its input")
	}
	if !res.Injected {
		t.Fatalf("not injected: %+v", res)
	}
	var names []string
	for _, c := range out.Spec.InitContainers {
		names = append(names, c.Name)
	}
	if want := []string{InitContainerName, ProxyContainerName, "migrate"}; !slices.Equal(names, want) {
		t.Fatalf("init containers %v, want %v: the init step, then the sidecar, then the pod's own", names, want)
	}
	initC, proxy := out.Spec.InitContainers[0], out.Spec.InitContainers[1]

	if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Error("the proxy is not a native sidecar (restartPolicy Always)")
	}
	if initC.RestartPolicy != nil {
		t.Error("the init step must run once, not as a sidecar")
	}
	for _, want := range []string{
		"--control-plane=weft-control-plane.weft-system.svc:15010",
		"--workload=$(POD_NAMESPACE)/$(POD_NAME)",
		"--trust-domain=cluster.local",
		"--transparent",
		"--transparent-inbound-port=15006",
		"--transparent-outbound-port=15001",
		"--admin=:15100",
		"--log-level=info",
		"--token-file=" + IdentityMountPath + "/token",
		"--ca-file=" + CABundleMountPath + "/ca.crt",
	} {
		if !slices.Contains(proxy.Args, want) {
			t.Errorf("proxy args %q lack %q", proxy.Args, want)
		}
	}
	if want := []string{"init", "--proxy-uid=2102", "--inbound-port=15006", "--outbound-port=15001", "--mesh-port=4143", "--admin-port=15100"}; !slices.Equal(initC.Args, want) {
		t.Errorf("init args %q, want %q", initC.Args, want)
	}
	envs := map[string]string{}
	for _, e := range proxy.Env {
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			envs[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if want := map[string]string{"POD_NAME": "metadata.name", "POD_NAMESPACE": "metadata.namespace", "POD_IP": "status.podIP"}; !reflect.DeepEqual(envs, want) {
		t.Errorf("downward API env %v, want %v", envs, want)
	}

	sc := proxy.SecurityContext
	if *sc.RunAsUser != DefaultProxyUID || !*sc.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || *sc.Privileged {
		t.Errorf("proxy security context %+v: want UID 2102, non-root, no escalation, read-only root", sc)
	}
	isc := initC.SecurityContext
	if !slices.Equal(isc.Capabilities.Add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) || !slices.Equal(isc.Capabilities.Drop, []corev1.Capability{"ALL"}) || *isc.Privileged {
		t.Errorf("init capabilities %+v: want NET_ADMIN and NET_RAW only, unprivileged", isc.Capabilities)
	}
	if p := proxy.StartupProbe; p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/ready" || p.HTTPGet.Port.StrVal != adminPortName {
		t.Errorf("startup probe %+v: want GET /ready on the admin port", p)
	}
	if p := proxy.ReadinessProbe; p == nil || p.HTTPGet.Path != "/ready" {
		t.Errorf("readiness probe %+v: want GET /ready", p)
	}

	vols := out.Spec.Volumes[len(out.Spec.Volumes)-2:]
	if vol := vols[0]; vol.Name != IdentityVolumeName || vol.Projected == nil || vol.Projected.Sources[0].ServiceAccountToken.Audience != "weft" {
		t.Errorf("identity volume %+v: want a projected token of audience weft", vol)
	}
	if vol := vols[1]; vol.Name != CABundleVolumeName || vol.ConfigMap == nil || vol.ConfigMap.Name != CABundleConfigMap || vol.ConfigMap.Optional != nil {
		t.Errorf("CA bundle volume %+v: want ConfigMap %s, not optional", vol, CABundleConfigMap)
	}
	want := []corev1.VolumeMount{
		{Name: IdentityVolumeName, MountPath: IdentityMountPath, ReadOnly: true},
		{Name: CABundleVolumeName, MountPath: CABundleMountPath, ReadOnly: true},
	}
	if !reflect.DeepEqual(proxy.VolumeMounts, want) {
		t.Errorf("proxy mounts %+v, want %+v", proxy.VolumeMounts, want)
	}
	if len(out.Spec.Containers) != 1 {
		t.Errorf("app containers changed: %+v", out.Spec.Containers)
	}
}

func TestPodIdempotent(t *testing.T) {
	ns := map[string]string{InjectKey: Enabled}
	once, _, err := Pod(testPod(map[string]string{ProxyCPUAnnotation: "1"}, nil), ns, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	twice, res, err := Pod(once, ns, testOptions())
	if err != nil {
		t.Fatal(err)
	}
	if res.Injected || !reflect.DeepEqual(once, twice) {
		t.Fatalf("injecting twice changed the pod (%+v)", res)
	}
	// Even with other options, and even if it would now opt out or carry
	// a bad annotation, an injected pod is left as it is.
	once.Annotations[ProxyCPUAnnotation] = "bad"
	o := testOptions()
	o.ProxyImage = "other:2"
	thrice, res, err := Pod(once, ns, o)
	if err != nil || res.Injected || !reflect.DeepEqual(once, thrice) {
		t.Fatalf("an injected pod was changed: %+v, %v", res, err)
	}
}

func TestPodTuning(t *testing.T) {
	out, res, err := Pod(testPod(map[string]string{
		SkipInboundPortsAnnotation:  "8080,9090",
		SkipOutboundPortsAnnotation: "5432",
		ProxyCPUAnnotation:          "200m",
		ProxyMemoryAnnotation:       "100Mi",
		ProxyLogLevelAnnotation:     "warn",
	}, nil), map[string]string{InjectKey: Enabled}, testOptions())
	if err != nil || !res.Injected {
		t.Fatalf("%+v, %v", res, err)
	}
	initC, proxy := out.Spec.InitContainers[0], out.Spec.InitContainers[1]
	for _, want := range []string{"--skip-inbound-ports=8080,9090", "--skip-outbound-ports=5432"} {
		if !slices.Contains(initC.Args, want) {
			t.Errorf("init args %q lack %q", initC.Args, want)
		}
	}
	if !slices.Contains(proxy.Args, "--log-level=warn") {
		t.Errorf("proxy args %q lack the log level", proxy.Args)
	}
	r := proxy.Resources
	if r.Requests.Cpu().String() != "200m" || r.Requests.Memory().String() != "100Mi" || r.Limits.Memory().String() != "100Mi" {
		t.Errorf("resources %+v: want CPU request 200m, memory request and limit 100Mi", r)
	}
	if _, ok := r.Limits[corev1.ResourceCPU]; ok {
		t.Error("the proxy must have no CPU limit")
	}
}

func TestPodAppProbes(t *testing.T) {
	in := testPod(nil, nil)
	app := &in.Spec.Containers[0]
	app.Ports = append(app.Ports, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	app.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http")}}, TimeoutSeconds: 3}
	app.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/live", Port: intstr.FromString("web")}}}
	// No leading slash (the kubelet adds it), and $ the kubelet's
	// expansion of args would change if the injector did not escape it.
	app.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "healthz", Port: intstr.FromInt32(8080),
		HTTPHeaders: []corev1.HTTPHeader{{Name: "X-Token", Value: "$(POD_IP) a$$b"}}}}}
	out, res, err := Pod(in, map[string]string{InjectKey: Enabled}, testOptions())
	if err != nil || !res.Injected {
		t.Fatalf("%+v, %v", res, err)
	}
	got := out.Spec.Containers[0]
	if h := got.ReadinessProbe.HTTPGet; h.Path != "/app-health/app/readiness" || h.Port.IntVal != 15100 || got.ReadinessProbe.TimeoutSeconds != 3 {
		t.Errorf("readiness probe %+v (timeout %d): want /app-health/app/readiness on the admin port, its timeout kept", h, got.ReadinessProbe.TimeoutSeconds)
	}
	// A named port the container does not have: the kubelet would fail
	// it anyway; it stays, and the author hears why.
	if h := got.LivenessProbe.HTTPGet; h.Path != "/live" || h.Port.StrVal != "web" {
		t.Errorf("liveness probe of an unknown port was moved: %+v", h)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "liveness probe port web is not one of its ports") {
		t.Errorf("warnings %q: want one naming the liveness probe's unknown port", res.Warnings)
	}
	var probes string
	for _, a := range out.Spec.InitContainers[1].Args {
		if v, ok := strings.CutPrefix(a, "--app-probes="); ok {
			probes = v
		}
	}
	// What the proxy gets once the kubelet has expanded the argument.
	set, err := appprobe.Parse(expand.Expand(probes, map[string]string{"POD_IP": "198.18.0.9"}))
	if err != nil || len(set) != 2 || set["app/readiness"].Port != 8080 || set["app/readiness"].Path != "/ready" || set["app/readiness"].TimeoutSeconds != 3 {
		t.Fatalf("--app-probes=%s (%v): want the readiness and startup probes of port 8080", probes, err)
	}
	if st := set["app/startup"]; st.Path != "/healthz" || len(st.Headers) != 1 || st.Headers[0].Value != "$(POD_IP) a$$b" {
		t.Errorf("startup probe %+v: want path /healthz and the header's $ as it was", st)
	}
	if !slices.Contains(out.Spec.InitContainers[1].Args, "--app-probe-address=$(POD_IP)") {
		t.Errorf("proxy args %q: probes must go to the pod's IP", out.Spec.InitContainers[1].Args)
	}
	if in.Spec.Containers[0].ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Error("the input pod was modified")
	}
}

func TestPodNotInjected(t *testing.T) {
	hostNet := testPod(nil, nil)
	hostNet.Spec.HostNetwork = true
	for _, tc := range []struct {
		name    string
		pod     *corev1.Pod
		ns      map[string]string
		warning bool
	}{
		{name: "namespace not opted in", pod: testPod(nil, nil)},
		{name: "pod opted out", pod: testPod(map[string]string{InjectKey: Disabled}, nil), ns: map[string]string{InjectKey: Enabled}},
		{name: "host network", pod: hostNet, ns: map[string]string{InjectKey: Enabled}, warning: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, res, err := Pod(tc.pod, tc.ns, testOptions())
			if err != nil {
				t.Fatal(err)
			}
			if res.Injected || !reflect.DeepEqual(out, tc.pod) {
				t.Fatalf("the pod changed: %+v", res)
			}
			if tc.warning != (len(res.Warnings) > 0) {
				t.Errorf("warnings %q", res.Warnings)
			}
		})
	}
}

func TestPodRefused(t *testing.T) {
	ns := map[string]string{InjectKey: Enabled}
	asProxy := testPod(nil, nil)
	asProxy.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: ptr(int64(DefaultProxyUID))}
	asProxyButOverridden := asProxy.DeepCopy()
	for i := range asProxyButOverridden.Spec.Containers {
		asProxyButOverridden.Spec.Containers[i].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(1000))}
	}
	asProxyButOverridden.Spec.InitContainers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: ptr(int64(1000))}
	portClash := testPod(nil, nil)
	portClash.Spec.Containers[0].Ports = append(portClash.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: DefaultInboundPort})
	nameClash := testPod(nil, nil)
	nameClash.Spec.Containers = append(nameClash.Spec.Containers, corev1.Container{Name: InitContainerName})
	volClash := testPod(nil, nil)
	volClash.Spec.Volumes = []corev1.Volume{{Name: IdentityVolumeName}}
	bundleClash := testPod(nil, nil)
	bundleClash.Spec.Volumes = []corev1.Volume{{Name: CABundleVolumeName}}

	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		o    func(*Options)
		want string
	}{
		{name: "app runs as the proxy's UID", pod: asProxy, want: "runs as UID 2102, the proxy's"},
		{name: "app port is the proxy's", pod: portClash, want: "listens on port 15006, the proxy's inbound port"},
		{name: "container name taken", pod: nameClash, want: "already has a container named weft-init"},
		{name: "volume name taken", pod: volClash, want: "already has a volume named weft-identity"},
		{name: "CA bundle volume name taken", pod: bundleClash, want: "already has a volume named weft-ca-bundle"},
		{name: "skipping a transparent port", pod: testPod(map[string]string{SkipOutboundPortsAnnotation: "80,15001"}, nil), want: `weft.dev/skip-outbound-ports: "80,15001": port 15001 is one of the proxy's transparent ports`},
		{name: "app port is the mesh port", pod: func() *corev1.Pod {
			p := testPod(nil, nil)
			p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: DefaultMeshPort}}
			return p
		}(), want: "the proxy's mesh port"},
		{name: "bad tuning", pod: testPod(map[string]string{ProxyMemoryAnnotation: "-1Gi", ProxyCPUAnnotation: "0"}, nil), want: "weft.dev/proxy-cpu"},
		{name: "no image", pod: testPod(nil, nil), o: func(o *Options) { o.ProxyImage = "" }, want: "proxy image"},
		{name: "no control plane port", pod: testPod(nil, nil), o: func(o *Options) { o.ControlPlane = "weft" }, want: "control plane"},
		{name: "ports clash", pod: testPod(nil, nil), o: func(o *Options) { o.AdminPort = DefaultInboundPort }, want: "admin port 15006 is also the inbound port"},
		{name: "root as proxy UID", pod: testPod(nil, nil), o: func(o *Options) { o.ProxyUID = -1 }, want: "proxy UID"},
		{name: "short token", pod: testPod(nil, nil), o: func(o *Options) { o.TokenExpiration = 60 }, want: "token expiration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions()
			if tc.o != nil {
				tc.o(&o)
			}
			_, _, err := Pod(tc.pod, ns, o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	t.Run("every container overrides the pod's UID", func(t *testing.T) {
		if _, _, err := Pod(asProxyButOverridden, ns, testOptions()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("both bad tunings are named", func(t *testing.T) {
		_, _, err := Pod(testPod(map[string]string{ProxyMemoryAnnotation: "-1Gi", ProxyCPUAnnotation: "0"}, nil), ns, testOptions())
		for _, key := range []string{ProxyCPUAnnotation, ProxyMemoryAnnotation} {
			if !strings.Contains(err.Error(), key) {
				t.Errorf("%v does not name %s", err, key)
			}
		}
	})
}

func TestPodIPv6(t *testing.T) {
	o := testOptions()
	o.IPv6 = true
	out, _, err := Pod(testPod(nil, nil), map[string]string{InjectKey: Enabled}, o)
	if err != nil {
		t.Fatal(err)
	}
	if args := out.Spec.InitContainers[0].Args; args[len(args)-1] != "--ipv6" {
		t.Errorf("init args %q: want --ipv6", args)
	}
}

// The control plane reads an injected pod as a Workload
// (internal/manifest): it must find the proxy's mesh and admin ports
// where injection put them, and take none of them for an app port.
func TestInjectedPodIsTheWorkloadTheControlPlaneReads(t *testing.T) {
	o := testOptions()
	o.MeshPort, o.AdminPort = 4200, 4201
	out, _, err := Pod(testPod(nil, nil), map[string]string{InjectKey: Enabled}, o)
	if err != nil {
		t.Fatal(err)
	}
	if !AlreadyInjected(&out.Spec) || !manifest.IsMeshedPod(out) {
		t.Fatal("the injected pod is not meshed to the control plane")
	}
	out.Status.PodIP = "198.18.0.10"
	out.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	w, err := manifest.WorkloadFromPod(out)
	if err != nil {
		t.Fatal(err)
	}
	if w.InboundPort != 4200 || w.AdminPort != 4201 {
		t.Errorf("workload ports inbound %d, admin %d: want 4200 and 4201", w.InboundPort, w.AdminPort)
	}
	if len(w.Ports) != 1 || w.Ports[0].Port != 8080 {
		t.Errorf("app ports %+v: want 8080 alone", w.Ports)
	}
}
