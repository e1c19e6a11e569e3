package manifest

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/weftmesh/weft/internal/model"
)

// In Kubernetes mode a meshed Pod is a Workload: the Pod carries a
// container named ProxyContainer (the injected sidecar), whose container
// ports named ProxyInboundPortName and ProxyAdminPortName say where the
// proxy takes mesh traffic and serves its admin API.
const (
	ProxyContainer       = "weft-proxy"
	ProxyInboundPortName = "weft-inbound"
	ProxyAdminPortName   = "weft-admin"
	// DefaultProxyInboundPort and DefaultProxyAdminPort apply when the
	// sidecar names no such port; the injector uses them too (the admin
	// port is weft-proxy's own default, --admin 127.0.0.1:15100).
	DefaultProxyInboundPort = 4143
	DefaultProxyAdminPort   = 15100
)

// IsMeshedPod reports whether a Pod carries the proxy sidecar, as an init
// container (a native sidecar) or an ordinary one.
func IsMeshedPod(p *corev1.Pod) bool { return proxyContainer(p) != nil }

func proxyContainer(p *corev1.Pod) *corev1.Container {
	for _, list := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range list {
			if list[i].Name == ProxyContainer {
				return &list[i]
			}
		}
	}
	return nil
}

// WorkloadFromPod converts a meshed, scheduled Pod into the Workload its
// proxy serves: its labels and service account, its IP, the TCP ports of
// its app containers (protocol from the port name's prefix, as for
// Services: http-, http2-, grpc-, tcp-; else detected), and the proxy's
// ports. A Pod that is not ready still gets its Workload (its proxy needs
// the config to become ready) but marked NotReady, so no Service sends it
// requests.
func WorkloadFromPod(p *corev1.Pod) (*model.Workload, error) {
	var fe model.FieldErrors
	sidecar := proxyContainer(p)
	if sidecar == nil {
		fe.Add("spec.initContainers", "no %s container: the Pod is not meshed", ProxyContainer)
		return nil, fe.Err()
	}
	out := &model.Workload{
		Ref:            model.Ref{Namespace: namespaceOf(p.Namespace), Name: p.Name},
		Labels:         p.Labels,
		ServiceAccount: p.Spec.ServiceAccountName,
		Address:        p.Status.PodIP,
		InboundPort:    DefaultProxyInboundPort,
		AdminPort:      DefaultProxyAdminPort,
		NotReady:       !podReady(p),
	}
	if out.Address == "" {
		fe.Add("status.podIP", "not assigned yet")
	}
	for i, cp := range sidecar.Ports {
		f := fmt.Sprintf("containers[%s].ports[%d].containerPort", ProxyContainer, i)
		switch cp.Name {
		case ProxyInboundPortName:
			out.InboundPort = portNumber(&fe, f, cp.ContainerPort)
		case ProxyAdminPortName:
			out.AdminPort = portNumber(&fe, f, cp.ContainerPort)
		}
	}
	for ci, c := range p.Spec.Containers {
		if c.Name == ProxyContainer {
			continue
		}
		for i, cp := range c.Ports {
			if cp.Protocol != "" && cp.Protocol != corev1.ProtocolTCP {
				continue // the mesh carries TCP only; UDP and SCTP pass by
			}
			f := fmt.Sprintf("spec.containers[%d].ports[%d].containerPort", ci, i)
			out.Ports = append(out.Ports, model.WorkloadPort{Name: cp.Name, Port: portNumber(&fe, f, cp.ContainerPort), Protocol: namedPortProtocol(cp.Name)})
		}
	}
	return checked(fe, out)
}

// namedPortProtocol reads the protocol a port name's prefix declares
// ("grpc", "http-web"), the convention Istio and Linkerd users know; a
// name without a known prefix declares none.
func namedPortProtocol(name string) model.Protocol {
	prefix, _, _ := strings.Cut(name, "-")
	if proto, err := model.ParseProtocol(prefix); err == nil {
		return proto
	}
	return model.ProtocolDetect
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
