package proxy

import (
	"cmp"
	"maps"
	"slices"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/balance"
)

// Dump is the JSON view of a proxy served at /config.
type Dump struct {
	Ready     bool           `json:"ready"`
	Version   uint64         `json:"version"`
	Balancer  string         `json:"balancer"`
	Workload  *WorkloadDump  `json:"workload,omitempty"`
	Listeners []ListenerDump `json:"listeners"`
	Services  []ServiceDump  `json:"services"`
	Peers     map[string]int `json:"peerConnections"`
	// Authorization is the workload's inbound authorization; absent when no
	// policy selects it and every identity of the mesh may reach it.
	Authorization *AuthzDump `json:"authorization,omitempty"`
}

// AuthzDump summarizes the inbound authorization in force.
type AuthzDump struct {
	// Selected: an allow policy selects the workload, so what no allow
	// rule matches is denied.
	Selected   bool `json:"selected"`
	AllowRules int  `json:"allowRules"`
	DenyRules  int  `json:"denyRules"`
	// Policies are the policies the rules come from.
	Policies []string `json:"policies"`
}

// WorkloadDump is the proxy's own workload.
type WorkloadDump struct {
	Ref         string     `json:"ref"`
	Address     string     `json:"address"`
	InboundPort uint32     `json:"inboundPort"`
	Ports       []PortDump `json:"ports"`
}

// PortDump is a workload or service port.
type PortDump struct {
	Name     string `json:"name,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// ListenerDump is one listener and, for outbound ones, where it leads.
type ListenerDump struct {
	Role      string `json:"role"`
	Address   string `json:"address"`
	Service   string `json:"service,omitempty"`
	Port      uint32 `json:"port,omitempty"`
	Protocol  string `json:"protocol,omitempty"`
	Endpoints int    `json:"endpoints"`
	// Problem says why requests on the listener fail, if they do.
	Problem string `json:"problem,omitempty"`
}

// ServiceDump is a subscribed service as the proxy knows it.
type ServiceDump struct {
	Ref     string `json:"ref"`
	Version uint64 `json:"version"`
	// Balancer is how the proxy picks among the endpoints.
	Balancer  string         `json:"balancer"`
	Ports     []PortDump     `json:"ports"`
	Endpoints []EndpointDump `json:"endpoints"`
	// Routes are the rules of the routes attached to the service, in the
	// order they are tried; none sends every request to its endpoints.
	Routes []RouteDump `json:"routes,omitempty"`
	// Policies are the retry, fault and circuit-breaker policies in force
	// for calls to the service.
	Policies []string `json:"policies,omitempty"`
}

// RouteDump is one rule of a route, for one of its matches.
type RouteDump struct {
	Route    string        `json:"route"`
	Port     uint32        `json:"port,omitempty"`
	Backends []BackendDump `json:"backends,omitempty"`
}

// BackendDump is where a route rule sends a share of its requests.
type BackendDump struct {
	Service string `json:"service"`
	Port    uint32 `json:"port,omitempty"`
	Weight  uint32 `json:"weight"`
}

// EndpointDump is one endpoint of a service.
type EndpointDump struct {
	ID          string            `json:"id"`
	Address     string            `json:"address"`
	ProxyPort   uint32            `json:"proxyPort"`
	TargetPorts map[uint32]uint32 `json:"targetPorts"`
}

// ConfigDump returns a Dump of the config in force and the listeners.
func (p *Proxy) ConfigDump() any {
	d := Dump{
		Ready:     p.Ready(),
		Balancer:  cmp.Or(p.opts.Balancer, balance.Default),
		Listeners: []ListenerDump{},
		Services:  []ServiceDump{},
		Peers:     p.pool.Peers(),
	}
	st := p.cur.Load()
	if st == nil {
		return d
	}
	cfg := st.cfg
	w := cfg.Workload
	d.Version = cfg.Version
	d.Workload = &WorkloadDump{Ref: w.Ref.String(), Address: w.Address, InboundPort: w.InboundPort, Ports: []PortDump{}}
	for _, wp := range w.Ports {
		d.Workload.Ports = append(d.Workload.Ports, PortDump{Name: wp.Name, Port: wp.Port, Protocol: string(wp.Protocol)})
	}
	if a := cfg.Authz; a != nil {
		d.Authorization = &AuthzDump{Selected: a.Selected, AllowRules: len(a.Allow), DenyRules: len(a.Deny), Policies: []string{}}
		for _, g := range slices.Concat(a.Allow, a.Deny) {
			if !slices.Contains(d.Authorization.Policies, g.Policy) {
				d.Authorization.Policies = append(d.Authorization.Policies, g.Policy)
			}
		}
	}

	p.mu.Lock()
	if p.inbound != nil {
		d.Listeners = append(d.Listeners, ListenerDump{Role: "inbound", Address: p.inbound.addr})
	}
	for port, o := range p.outbound {
		ld := ListenerDump{Role: "outbound", Address: o.ln.Addr().String()}
		if rt := st.routes[port]; rt != nil {
			ld.Service, ld.Port = rt.out.Service.String(), rt.out.Port
			ld.Protocol = string(rt.protocol())
			if ld.Protocol == "" {
				ld.Protocol = "detect"
			}
			ld.Endpoints = len(rt.endpoints)
			if err := rt.problem(); err != nil {
				ld.Problem = err.Error()
			}
		}
		d.Listeners = append(d.Listeners, ld)
	}
	p.mu.Unlock()
	slices.SortFunc(d.Listeners, func(a, b ListenerDump) int {
		return cmp.Or(cmp.Compare(a.Role, b.Role), cmp.Compare(a.Address, b.Address))
	})

	for _, ref := range slices.SortedFunc(maps.Keys(cfg.Services), func(a, b model.Ref) int {
		return cmp.Compare(a.String(), b.String())
	}) {
		ss := cfg.Services[ref]
		sd := ServiceDump{Ref: ref.String(), Version: ss.Version, Ports: []PortDump{}, Endpoints: []EndpointDump{}}
		if ss.Service != nil {
			sd.Balancer = p.balancerName(ss.Service.LoadBalancer)
		}
		if ss.Service != nil {
			for _, sp := range ss.Service.Ports {
				sd.Ports = append(sd.Ports, PortDump{Name: sp.Name, Port: sp.Port, Protocol: string(sp.Protocol)})
			}
		}
		for _, ep := range ss.Endpoints {
			sd.Endpoints = append(sd.Endpoints, EndpointDump{ID: ep.ID, Address: ep.Address, ProxyPort: ep.ProxyPort, TargetPorts: ep.TargetPorts})
		}
		if ss.Routes != nil {
			for _, tr := range ss.Routes.Rules {
				rd := RouteDump{Route: tr.Route, Port: tr.Port}
				for _, b := range tr.Rule.Backends {
					rd.Backends = append(rd.Backends, BackendDump{Service: b.Service, Port: b.Port, Weight: b.Weight})
				}
				sd.Routes = append(sd.Routes, rd)
			}
		}
		if tp := ss.Traffic; tp != nil {
			if tp.Retry != nil {
				sd.Policies = append(sd.Policies, tp.Retry.Key().String())
			}
			if tp.Fault != nil {
				sd.Policies = append(sd.Policies, tp.Fault.Key().String())
			}
			if tp.Breaker != nil {
				sd.Policies = append(sd.Policies, tp.Breaker.Key().String())
			}
		}
		d.Services = append(d.Services, sd)
	}
	return d
}
