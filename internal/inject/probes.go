package inject

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/appprobe"
)

// moveAppProbes points the HTTP probes of the pod's app containers at the
// proxy's admin port (see internal/appprobe) and returns what they were,
// for the proxy to send to the app; warnings name the probes it had to
// leave as they were. A probe the kubelet sends to an app port arrives
// from outside the mesh, in plaintext, which a strict workload refuses,
// so without this a strict pod would never become ready.
//
// Left as they are: probes of a port the pod skips (they reach the app
// directly), probes with a Host (they go elsewhere than the pod), and
// TCP, gRPC and exec probes. A TCP probe only needs the connection, which
// the proxy accepts; gRPC probes of a strict workload's ports are
// refused, as plaintext gRPC is.
func moveAppProbes(spec *corev1.PodSpec, o Options, t Tuning) (appprobe.Set, []string) {
	set := appprobe.Set{}
	var warnings []string
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, kp := range []struct {
			kind  string
			probe **corev1.Probe
		}{{"liveness", &c.LivenessProbe}, {"readiness", &c.ReadinessProbe}, {"startup", &c.StartupProbe}} {
			p := *kp.probe
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Host != "" {
				continue
			}
			port, ok := containerPort(c, p.HTTPGet.Port)
			if !ok {
				warnings = append(warnings, fmt.Sprintf("container %s: %s probe port %s is not one of its ports: the probe is left as it is, and a strict workload will refuse it",
					c.Name, kp.kind, p.HTTPGet.Port.String()))
				continue
			}
			if slices.Contains(t.SkipInboundPorts, port) {
				continue
			}
			ap := appprobe.Probe{Port: port, Path: p.HTTPGet.Path, Scheme: string(p.HTTPGet.Scheme), TimeoutSeconds: p.TimeoutSeconds}
			for _, h := range p.HTTPGet.HTTPHeaders {
				ap.Headers = append(ap.Headers, appprobe.Header{Name: h.Name, Value: h.Value})
			}
			set[appprobe.Key(c.Name, kp.kind)] = ap
			moved := p.DeepCopy()
			moved.HTTPGet = &corev1.HTTPGetAction{
				Path:   appprobe.Path(c.Name, kp.kind),
				Port:   intstr.FromInt32(o.AdminPort),
				Scheme: corev1.URISchemeHTTP,
			}
			*kp.probe = moved
		}
	}
	return set, warnings
}

// containerPort resolves a probe's port, a number or the name of one of
// the container's ports.
func containerPort(c *corev1.Container, port intstr.IntOrString) (int32, bool) {
	if port.Type == intstr.Int {
		return port.IntVal, port.IntVal > 0 && port.IntVal <= 65535
	}
	for _, p := range c.Ports {
		if p.Name != "" && p.Name == port.StrVal {
			return p.ContainerPort, true
		}
	}
	return 0, false
}
