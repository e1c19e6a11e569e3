package inject

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/appprobe"
)

// moveAppProbes points the HTTP and TCP probes of the pod's app
// containers at the proxy's admin port (see internal/appprobe) and returns
// what they were, for the proxy to send to the app; warnings name the
// probes it had to leave as they were. A probe the kubelet sends to an app
// port arrives from outside the mesh, in plaintext: a strict workload
// refuses an HTTP one, so its pods would never become ready, and the
// proxy accepts every connection, so a TCP one would pass whether the app
// is up or not.
//
// Left as they are: probes of a port the pod skips (they reach the app
// directly), probes with a Host (they go elsewhere than the pod), and gRPC
// and exec probes; gRPC probes of a strict workload's ports are refused,
// as plaintext gRPC is.
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
			if p == nil {
				continue
			}
			var ap appprobe.Probe
			var port intstr.IntOrString
			switch h, tcp := p.HTTPGet, p.TCPSocket; {
			case h != nil && h.Host == "":
				port = h.Port
				ap = appprobe.Probe{Path: h.Path, Scheme: string(h.Scheme)}
				if ap.Path != "" && !strings.HasPrefix(ap.Path, "/") {
					// The kubelet's URL has the slash whether the probe
					// writes it or not.
					ap.Path = "/" + ap.Path
				}
				for _, hh := range h.HTTPHeaders {
					ap.Headers = append(ap.Headers, appprobe.Header{Name: hh.Name, Value: hh.Value})
				}
			case tcp != nil && tcp.Host == "":
				port = tcp.Port
				ap = appprobe.Probe{Scheme: "TCP"}
			default:
				continue
			}
			n, ok := containerPort(c, port)
			if !ok {
				warnings = append(warnings, fmt.Sprintf("container %s: %s probe port %s is not one of its ports: the probe is left as it is, and the proxy takes its connections",
					c.Name, kp.kind, port.String()))
				continue
			}
			if slices.Contains(t.SkipInboundPorts, n) {
				continue
			}
			ap.Port, ap.TimeoutSeconds = n, p.TimeoutSeconds
			set[appprobe.Key(c.Name, kp.kind)] = ap
			moved := p.DeepCopy()
			moved.HTTPGet, moved.TCPSocket = &corev1.HTTPGetAction{
				Path:   appprobe.Path(c.Name, kp.kind),
				Port:   intstr.FromInt32(o.AdminPort),
				Scheme: corev1.URISchemeHTTP,
			}, nil
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
