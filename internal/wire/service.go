package wire

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// ServiceToProto converts the part of a service a proxy needs: its name,
// ports, balancer and cluster IPs. Labels, the selector and target ports stay in the control
// plane; each endpoint carries the target ports it resolved to.
func ServiceToProto(s *model.Service) *meshv1.Service {
	if s == nil {
		return nil
	}
	out := &meshv1.Service{Ref: RefToProto(s.Ref), LoadBalancer: s.LoadBalancer, ClusterIps: slices.Clone(s.ClusterIPs)}
	for _, p := range s.Ports {
		out.Ports = append(out.Ports, &meshv1.ServicePort{Name: p.Name, Port: p.Port, Protocol: ProtocolToProto(p.Protocol)})
	}
	return out
}

// ServiceFromProto converts and validates a service as the control plane
// sends it. Errors name the protobuf field.
func ServiceFromProto(s *meshv1.Service) (*model.Service, error) {
	if s == nil {
		return nil, errors.New("service: must be set")
	}
	return serviceFromProto(s, "")
}

func serviceFromProto(s *meshv1.Service, field string) (*model.Service, error) {
	fe := fields{prefix: field}
	if s == nil {
		fe.add("", "must be set")
		return nil, fe.err()
	}
	ref, err := ValidRefFromProto(s.GetRef())
	if err != nil {
		fe.add("ref", "%v", err)
	}
	out := &model.Service{Ref: ref, LoadBalancer: s.GetLoadBalancer()}
	if lb := out.LoadBalancer; lb != "" && !slices.Contains(model.LoadBalancers, lb) {
		fe.add("load_balancer", "%q: want one of %v", lb, model.LoadBalancers)
	}
	out.ClusterIPs = slices.Clone(s.GetClusterIps())
	clusterIPs(&fe, out.ClusterIPs)
	for i, p := range s.GetPorts() {
		f := fmt.Sprintf("ports[%d]", i)
		if p == nil {
			fe.add(f, "must be set")
			continue
		}
		proto, err := ProtocolFromProto(p.GetProtocol())
		if err != nil {
			fe.add(f+".protocol", "%v", err)
		}
		if p.GetPort() == 0 || p.GetPort() > 65535 {
			fe.add(f+".port", "must be between 1 and 65535, got %d", p.GetPort())
		}
		out.Ports = append(out.Ports, model.ServicePort{Name: p.GetName(), Port: p.GetPort(), Protocol: proto})
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return out, nil
}

// clusterIPs checks the cluster IPs as the model does, naming the
// protobuf field: a proxy matches them against the addresses connections
// were opened to, so a malformed one would silently never match.
func clusterIPs(fe *fields, ips []string) {
	var problems model.FieldErrors
	model.ValidateClusterIPs(&problems, "cluster_ips", ips)
	for _, p := range problems {
		fe.add(p.Field, "%s", p.Msg)
	}
}

// SameService reports whether two services look the same on the wire, so
// a change the proxy cannot see (a selector, a label) is not sent.
func SameService(a, b *model.Service) bool {
	if a == b {
		return true
	}
	if a == nil || b == nil || a.Ref != b.Ref || a.LoadBalancer != b.LoadBalancer || len(a.Ports) != len(b.Ports) ||
		!slices.Equal(a.ClusterIPs, b.ClusterIPs) {
		return false
	}
	for i := range a.Ports {
		pa, pb := a.Ports[i], b.Ports[i]
		if pa.Name != pb.Name || pa.Port != pb.Port || pa.Protocol != pb.Protocol {
			return false
		}
	}
	return true
}

// EndpointToProto converts an endpoint.
func EndpointToProto(e *model.Endpoint) *meshv1.Endpoint {
	return &meshv1.Endpoint{
		Id:             e.ID,
		Workload:       RefToProto(e.Workload),
		Address:        e.Address,
		ProxyPort:      e.ProxyPort,
		ServiceAccount: RefToProto(e.ServiceAccount),
		Labels:         cloneMap(e.Labels),
		TargetPorts:    cloneMap(e.TargetPorts),
	}
}

// EndpointFromProto converts and validates an endpoint. Errors name the
// protobuf field.
func EndpointFromProto(e *meshv1.Endpoint) (*model.Endpoint, error) {
	if e == nil {
		return nil, errors.New("endpoint: must be set")
	}
	return endpointFromProto(e, "")
}

func endpointFromProto(e *meshv1.Endpoint, field string) (*model.Endpoint, error) {
	fe := fields{prefix: field}
	if e == nil {
		fe.add("", "must be set")
		return nil, fe.err()
	}
	if e.GetId() == "" {
		fe.add("id", "must not be empty")
	}
	wl, err := ValidRefFromProto(e.GetWorkload())
	if err != nil {
		fe.add("workload", "%v", err)
	}
	sa, err := ValidRefFromProto(e.GetServiceAccount())
	if err != nil {
		fe.add("service_account", "%v", err)
	}
	if _, err := netip.ParseAddr(e.GetAddress()); err != nil {
		fe.add("address", "must be an IP address, got %q", e.GetAddress())
	}
	if p := e.GetProxyPort(); p == 0 || p > 65535 {
		fe.add("proxy_port", "must be between 1 and 65535, got %d", p)
	}
	for sp, tp := range e.GetTargetPorts() {
		if sp == 0 || sp > 65535 || tp == 0 || tp > 65535 {
			fe.add(fmt.Sprintf("target_ports[%d]", sp), "ports must be between 1 and 65535, got %d -> %d", sp, tp)
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return &model.Endpoint{
		ID:             e.GetId(),
		Workload:       wl,
		Address:        e.GetAddress(),
		ProxyPort:      e.GetProxyPort(),
		ServiceAccount: sa,
		Labels:         cloneMap(e.GetLabels()),
		TargetPorts:    cloneMap(e.GetTargetPorts()),
	}, nil
}

// FullUpdate is the update that replaces all a proxy knows of a service
// with its state st; a nil st tells the proxy the service does not exist.
func FullUpdate(ref model.Ref, st *model.ServiceState) *meshv1.ServiceUpdate {
	u := &meshv1.ServiceUpdate{Ref: RefToProto(ref), Full: true}
	if st == nil {
		return u
	}
	u.Exists = true
	u.Service = ServiceToProto(st.Service)
	u.Routes = RoutesToProto(st.Routes)
	u.Traffic = TrafficToProto(st.Traffic)
	u.Upserted = make([]*meshv1.Endpoint, len(st.Endpoints))
	for i, e := range st.Endpoints {
		u.Upserted[i] = EndpointToProto(e)
	}
	return u
}

// ApplyUpdate returns the state of a service after an update: base is what
// the proxy knew (nil if nothing), version the response's version. It
// returns nil when the update says the service does not exist. base is not
// modified; the result shares the endpoints that did not change.
func ApplyUpdate(base *model.ServiceState, u *meshv1.ServiceUpdate, version uint64) (*model.ServiceState, error) {
	ref, err := ValidRefFromProto(u.GetRef())
	if err != nil {
		return nil, fmt.Errorf("ref: %w", err)
	}
	if !u.GetExists() {
		return nil, nil
	}
	if !u.GetFull() && base == nil {
		return nil, fmt.Errorf("service %s: delta with no full state before it", ref)
	}
	out := &model.ServiceState{Version: version}
	if base != nil && !u.GetFull() {
		out.Service, out.Routes, out.Traffic = base.Service, base.Routes, base.Traffic
	}
	if u.GetRoutes() != nil {
		routes, err := RoutesFromProto(u.GetRoutes())
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", ref, err)
		}
		out.Routes = routes
	}
	if u.GetTraffic() != nil {
		traffic, err := TrafficFromProto(u.GetTraffic())
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", ref, err)
		}
		out.Traffic = traffic
	}
	if u.GetService() != nil {
		svc, err := serviceFromProto(u.GetService(), "service")
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", ref, err)
		}
		out.Service = svc
	}
	if out.Service == nil {
		return nil, fmt.Errorf("service %s: service: must be set in a full state", ref)
	}
	if out.Service.Ref != ref {
		return nil, fmt.Errorf("service %s: service.ref: is %s", ref, out.Service.Ref)
	}

	eps := map[string]*model.Endpoint{}
	if !u.GetFull() {
		for _, e := range base.Endpoints {
			eps[e.ID] = e
		}
		for _, id := range u.GetRemoved() {
			delete(eps, id)
		}
	}
	for i, pe := range u.GetUpserted() {
		e, err := endpointFromProto(pe, fmt.Sprintf("upserted[%d]", i))
		if err != nil {
			return nil, fmt.Errorf("service %s: %w", ref, err)
		}
		eps[e.ID] = e
	}
	out.Endpoints = make([]*model.Endpoint, 0, len(eps))
	for _, e := range eps {
		out.Endpoints = append(out.Endpoints, e)
	}
	slices.SortFunc(out.Endpoints, func(a, b *model.Endpoint) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}
