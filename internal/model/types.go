package model

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
)

// Ref names a namespaced object.
type Ref struct {
	Namespace string
	Name      string
}

func (r Ref) String() string { return r.Namespace + "/" + r.Name }

// ParseRef reads "namespace/name", or "name" in defaultNamespace.
func ParseRef(s, defaultNamespace string) (Ref, error) {
	ns, name, found := strings.Cut(s, "/")
	if !found {
		ns, name = defaultNamespace, s
	}
	r := Ref{Namespace: ns, Name: name}
	if err := ValidateRef(r); err != nil {
		return Ref{}, fmt.Errorf("%q: %w", s, err)
	}
	return r, nil
}

// ValidateRef checks that both parts are DNS labels.
func ValidateRef(r Ref) error {
	if err := ValidateDNSLabel(r.Namespace); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if err := ValidateDNSLabel(r.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	return nil
}

// Protocol is how a port's traffic is carried. The empty Protocol means
// "detect from the first bytes".
type Protocol string

const (
	ProtocolDetect Protocol = ""
	ProtocolHTTP1  Protocol = "http"
	ProtocolHTTP2  Protocol = "http2"
	ProtocolGRPC   Protocol = "grpc"
	ProtocolTCP    Protocol = "tcp"
)

// ParseProtocol accepts the names Kubernetes' appProtocol uses for the
// protocols weft knows.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.ToLower(s) {
	case "":
		return ProtocolDetect, nil
	case "http", "http1", "http/1.1":
		return ProtocolHTTP1, nil
	case "http2", "h2c", "kubernetes.io/h2c", "h2":
		return ProtocolHTTP2, nil
	case "grpc":
		return ProtocolGRPC, nil
	case "tcp", "opaque":
		return ProtocolTCP, nil
	}
	return "", fmt.Errorf("unknown protocol %q (want http, http2, grpc or tcp)", s)
}

// IsHTTP reports whether the proxy handles the protocol request by request.
func (p Protocol) IsHTTP() bool {
	return p == ProtocolHTTP1 || p == ProtocolHTTP2 || p == ProtocolGRPC
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name string
	Port uint32
	// TargetPort is the workload port number; when zero, TargetPortName
	// names a workload port, and when both are empty the target is Port.
	TargetPort     uint32
	TargetPortName string
	Protocol       Protocol
}

// Service is a named set of workloads picked by a label selector.
type Service struct {
	Ref      Ref
	Labels   map[string]string
	Selector map[string]string
	Ports    []ServicePort
	// MTLSMode, when set, is the mTLS mode of the workloads the service
	// selects (annotation weft.dev/mtls-mode).
	MTLSMode MTLSMode
	// LoadBalancer, when set, is how callers pick among the service's
	// endpoints (annotation weft.dev/load-balancer): one of LoadBalancers.
	LoadBalancer string
	// ClusterIPs are the virtual addresses the service answers on, at most
	// one per IP family (a v1 Service's spec.clusterIPs): a proxy that
	// intercepts transparently sends what an app opens to one of them, on
	// a service port, to the service. Empty for a service without one
	// (headless, or one only reached through explicit outbound ports).
	ClusterIPs []string
	// Members, when not nil, names the workloads of the service's
	// namespace that are its endpoints, whatever the selector and their
	// NotReady say: Kubernetes mode reads them from the Service's
	// EndpointSlices, which the cluster keeps (readiness gates, terminating
	// pods, Services without a selector). Nil in universal mode, where the
	// selector and NotReady decide.
	Members map[string]bool
}

// LoadBalancerAnnotation names a Service's load balancer.
const LoadBalancerAnnotation = "weft.dev/load-balancer"

// LoadBalancers are the balancers a Service may name: power of two
// choices over peak-EWMA latency (the default), and round-robin.
var LoadBalancers = []string{"p2c", "round-robin"}

// Port returns the service port with the given number.
func (s *Service) Port(port uint32) (ServicePort, bool) {
	for _, p := range s.Ports {
		if p.Port == port {
			return p, true
		}
	}
	return ServicePort{}, false
}

// Selects reports whether the service picks a workload with these labels.
// A service with no selector picks nothing.
func (s *Service) Selects(labels map[string]string) bool {
	if len(s.Selector) == 0 {
		return false
	}
	for k, v := range s.Selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// WorkloadPort is a port the application listens on, beside its proxy.
type WorkloadPort struct {
	Name     string
	Port     uint32
	Protocol Protocol
}

// Outbound is one service the workload calls, reached at a local port.
type Outbound struct {
	Service   Ref
	Port      uint32
	LocalPort uint32
}

// Workload plays the part of a Pod: one instance of an application with a
// proxy beside it.
type Workload struct {
	Ref            Ref
	Labels         map[string]string
	ServiceAccount string
	// Address is where other proxies reach this workload's proxy.
	Address     string
	Ports       []WorkloadPort
	InboundPort uint32
	Outbound    []Outbound
	// AdminPort is where the proxy serves its admin API, on loopback; 0 if
	// unknown.
	AdminPort uint32
	// AccessLog makes the proxy log every request it carries, as JSON.
	AccessLog bool
	// NotReady keeps the workload out of its Services' endpoints while its
	// proxy still gets its config (a Pod that is not ready yet).
	NotReady bool
}

// Identity is the service account a workload runs as.
func (w *Workload) Identity() Ref {
	sa := w.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return Ref{Namespace: w.Ref.Namespace, Name: sa}
}

// Port returns the workload port with the given number.
func (w *Workload) Port(port uint32) (WorkloadPort, bool) {
	for _, p := range w.Ports {
		if p.Port == port {
			return p, true
		}
	}
	return WorkloadPort{}, false
}

// targetPort resolves the workload port that serves a service port; false
// when the workload declares no such port. Only declared ports count: a
// proxy's inbound refuses any other, so it is never an open relay to
// whatever else listens beside its workload.
func (w *Workload) targetPort(sp ServicePort) (uint32, bool) {
	for _, p := range w.Ports {
		switch {
		case sp.TargetPortName != "":
			if p.Name == sp.TargetPortName {
				return p.Port, true
			}
		case sp.TargetPort != 0:
			if p.Port == sp.TargetPort {
				return p.Port, true
			}
		case p.Port == sp.Port:
			return p.Port, true
		}
	}
	return 0, false
}

// Endpoint is one workload serving a service.
type Endpoint struct {
	// ID is the workload's "namespace/name".
	ID             string
	Workload       Ref
	Address        string
	ProxyPort      uint32
	ServiceAccount Ref
	Labels         map[string]string
	// TargetPorts maps each service port to the workload port serving it.
	TargetPorts map[uint32]uint32
}

// HostPort is the address of the endpoint's proxy.
func (e *Endpoint) HostPort() string { return HostPort(e.Address, e.ProxyPort) }

// HostPort joins a host and a port the model holds into a dialable address.
func HostPort(host string, port uint32) string {
	return net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10))
}

// Equal reports whether two endpoints are the same in every field.
func (e *Endpoint) Equal(o *Endpoint) bool {
	return e.ID == o.ID && e.Workload == o.Workload && e.Address == o.Address &&
		e.ProxyPort == o.ProxyPort && e.ServiceAccount == o.ServiceAccount &&
		maps.Equal(e.Labels, o.Labels) && maps.Equal(e.TargetPorts, o.TargetPorts)
}

// Equal reports whether two services are the same in every field.
func (s *Service) Equal(o *Service) bool {
	return s.Ref == o.Ref && maps.Equal(s.Labels, o.Labels) &&
		maps.Equal(s.Selector, o.Selector) && slices.Equal(s.Ports, o.Ports) && s.MTLSMode == o.MTLSMode &&
		s.LoadBalancer == o.LoadBalancer && slices.Equal(s.ClusterIPs, o.ClusterIPs) &&
		(s.Members == nil) == (o.Members == nil) && maps.Equal(s.Members, o.Members)
}

// Equal reports whether two workloads are the same in every field.
func (w *Workload) Equal(o *Workload) bool {
	return w.Ref == o.Ref && maps.Equal(w.Labels, o.Labels) &&
		w.ServiceAccount == o.ServiceAccount && w.Address == o.Address &&
		slices.Equal(w.Ports, o.Ports) && w.InboundPort == o.InboundPort && w.AdminPort == o.AdminPort && w.AccessLog == o.AccessLog && w.NotReady == o.NotReady &&
		slices.Equal(w.Outbound, o.Outbound)
}
