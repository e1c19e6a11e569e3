package manifest

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

func namespaceOf(ns string) string {
	if ns == "" {
		return DefaultNamespace
	}
	return ns
}

// ServiceFromV1 converts and validates a Kubernetes Service.
func ServiceFromV1(s *corev1.Service) (*model.Service, error) {
	var fe model.FieldErrors
	svc := &model.Service{
		Ref:      model.Ref{Namespace: namespaceOf(s.Namespace), Name: s.Name},
		Labels:   s.Labels,
		Selector: s.Spec.Selector,
	}
	if v, ok := s.Annotations[model.MTLSModeAnnotation]; ok {
		mode, err := model.ParseMTLSMode(v)
		if err != nil || mode == model.MTLSUnset {
			fe.Add("metadata.annotations["+model.MTLSModeAnnotation+"]", "%q: want strict or permissive", v)
		}
		svc.MTLSMode = mode
	}
	svc.LoadBalancer = s.Annotations[model.LoadBalancerAnnotation]
	svc.ClusterIPs = clusterIPs(&fe, s.Spec)
	for i, p := range s.Spec.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		sp := model.ServicePort{Name: p.Name, Port: portNumber(&fe, f+".port", p.Port)}
		switch {
		case p.TargetPort.Type == intstr.String && p.TargetPort.StrVal != "":
			sp.TargetPortName = p.TargetPort.StrVal
		case p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal != 0:
			sp.TargetPort = portNumber(&fe, f+".targetPort", p.TargetPort.IntVal)
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			fe.Add(f+".protocol", "weft carries TCP only, got %s", p.Protocol)
		}
		proto, err := servicePortProtocol(p)
		if err != nil {
			fe.Add(f+".appProtocol", "%v", err)
		}
		sp.Protocol = proto
		svc.Ports = append(svc.Ports, sp)
	}
	return checked(fe, svc)
}

// clusterIPs reads spec.clusterIPs, or else spec.clusterIP, as Kubernetes
// fills them in: "None" (headless) and "" have none. A manifest may set
// either; when it sets both they must agree, as the API server demands.
func clusterIPs(fe *model.FieldErrors, spec corev1.ServiceSpec) []string {
	ip := spec.ClusterIP
	if ip == corev1.ClusterIPNone {
		ip = ""
	}
	if len(spec.ClusterIPs) == 0 || len(spec.ClusterIPs) == 1 && spec.ClusterIPs[0] == corev1.ClusterIPNone {
		if ip == "" {
			return nil
		}
		// Checked here, to name the field the manifest wrote.
		var problems model.FieldErrors
		model.ValidateClusterIPs(&problems, "spec.clusterIP", []string{ip})
		for _, p := range problems {
			fe.Add("spec.clusterIP", "%s", p.Msg)
		}
		return []string{ip}
	}
	if ip != "" && ip != spec.ClusterIPs[0] {
		fe.Add("spec.clusterIP", "%q: must be spec.clusterIPs[0], %q", ip, spec.ClusterIPs[0])
	}
	return spec.ClusterIPs
}

// checked returns out once both its conversion, which recorded its
// problems in fe, and the model's validation pass. Conversion problems
// come alone: a field that did not convert would be reported again, less
// clearly, by Validate.
func checked[T interface{ Validate() error }](fe model.FieldErrors, out T) (T, error) {
	var zero T
	if err := fe.Err(); err != nil {
		return zero, err
	}
	if err := out.Validate(); err != nil {
		return zero, err
	}
	return out, nil
}

// servicePortProtocol reads appProtocol, or else the prefix of the port's
// name ("http-web", "grpc"), the convention Istio and Linkerd users know.
func servicePortProtocol(p corev1.ServicePort) (model.Protocol, error) {
	if p.AppProtocol != nil {
		return model.ParseProtocol(*p.AppProtocol)
	}
	return namedPortProtocol(p.Name), nil
}

func portNumber(fe *model.FieldErrors, field string, p int32) uint32 {
	if p < 1 || p > 65535 {
		fe.Add(field, "must be between 1 and 65535, got %d", p)
		return 0
	}
	return uint32(p)
}

// portNumbers converts a list of ports, naming each bad one by its index.
func portNumbers(fe *model.FieldErrors, field string, ports []int32) []uint32 {
	var out []uint32
	for i, p := range ports {
		out = append(out, portNumber(fe, fmt.Sprintf("%s[%d]", field, i), p))
	}
	return out
}

// WorkloadFromV1alpha1 converts and validates a Workload.
func WorkloadFromV1alpha1(w *weftv1alpha1.Workload) (*model.Workload, error) {
	var fe model.FieldErrors
	ns := namespaceOf(w.Namespace)
	out := &model.Workload{
		Ref:            model.Ref{Namespace: ns, Name: w.Name},
		Labels:         w.Labels,
		ServiceAccount: w.Spec.ServiceAccount,
		Address:        w.Spec.Address,
		InboundPort:    portNumber(&fe, "spec.proxy.inboundPort", w.Spec.Proxy.InboundPort),
	}
	out.AccessLog = w.Spec.Proxy.AccessLog
	if w.Spec.Proxy.AdminPort != 0 {
		out.AdminPort = portNumber(&fe, "spec.proxy.adminPort", w.Spec.Proxy.AdminPort)
	}
	for i, p := range w.Spec.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		proto, err := model.ParseProtocol(p.Protocol)
		if err != nil {
			fe.Add(f+".protocol", "%v", err)
		}
		out.Ports = append(out.Ports, model.WorkloadPort{Name: p.Name, Port: portNumber(&fe, f+".port", p.Port), Protocol: proto})
	}
	for i, o := range w.Spec.Outbound {
		f := fmt.Sprintf("spec.outbound[%d]", i)
		ref, err := model.ParseRef(o.Service, ns)
		if err != nil {
			fe.Add(f+".service", "%v", err)
		}
		out.Outbound = append(out.Outbound, model.Outbound{
			Service:   ref,
			Port:      portNumber(&fe, f+".port", o.Port),
			LocalPort: portNumber(&fe, f+".localPort", o.LocalPort),
		})
	}
	return checked(fe, out)
}
