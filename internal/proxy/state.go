package proxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/authz"
	"github.com/weftmesh/weft/internal/proxy/balance"
	"github.com/weftmesh/weft/internal/proxy/pool"
)

// state is one applied config and what the request path derives from it.
// It is immutable once stored; Apply swaps in a new one.
type state struct {
	cfg *model.ProxyConfig
	// routes by outbound local port, so a listener finds its target and
	// endpoints in one atomic load even when Apply retargets the port.
	routes map[uint32]*route
	// peers are the proxy addresses of every endpoint the config knows.
	peers map[string]bool
	// accounts are the service accounts of those proxies, by address: the
	// identity mTLS expects of the peer at each.
	accounts map[string]model.Ref
	// authz decides what may reach the workload; nil allows the mesh.
	authz *authz.Policy
}

// target is what an outbound port leads to; balancers are kept per target
// so their per-endpoint state survives config changes.
type target struct {
	service model.Ref
	port    uint32
}

// route is an outbound port's view of its service.
type route struct {
	out     model.Outbound
	svc     *model.ServiceState // nil when the mesh has no such service
	port    model.ServicePort
	hasPort bool
	// endpoints serving the service port; the balancer holds the same set.
	endpoints []*model.Endpoint
	bal       balance.Balancer
	// table routes the service's requests to backend services, when routes
	// attach to it; nil sends them to its own endpoints.
	table *routeTable
	// retry, fault and breaker are the service's traffic policies; nil
	// when none.
	retry   *retrier
	fault   *faulter
	breaker *breaker
	// breakerPolicy is the policy in force for breaker.
	breakerPolicy *model.CircuitBreakerPolicy
}

// buildState derives the request-path state of cfg, reusing and updating
// balancers by target. It must be called with p.mu held.
func (p *Proxy) buildState(cfg *model.ProxyConfig) (*state, error) {
	st := &state{cfg: cfg, routes: map[uint32]*route{}, peers: map[string]bool{}, accounts: map[string]model.Ref{}}
	updated := map[target]bool{}
	for _, o := range cfg.Workload.Outbound {
		rt, err := p.targetRoute(cfg, o, updated)
		if err != nil {
			return nil, err
		}
		if rt.svc != nil && rt.svc.Routes != nil {
			table, err := p.compileTable(cfg, rt, updated)
			if err != nil {
				return nil, fmt.Errorf("routes of service %s: %w", o.Service, err)
			}
			rt.table = table
		}
		st.routes[o.LocalPort] = rt
	}
	for key := range p.balancers {
		if !updated[key] {
			delete(p.balancers, key)
			delete(p.budgets, key)
			delete(p.breakers, key)
		}
	}
	for _, ss := range cfg.Services {
		for _, ep := range ss.Endpoints {
			st.peers[ep.HostPort()] = true
			st.accounts[ep.HostPort()] = ep.ServiceAccount
		}
	}
	return st, nil
}

// targetRoute is the route to o's service and port, with the balancer of
// that target, updated once per config (updated records which).
func (p *Proxy) targetRoute(cfg *model.ProxyConfig, o model.Outbound, updated map[target]bool) (*route, error) {
	rt := &route{out: o, svc: cfg.Services[o.Service]}
	if rt.svc != nil && rt.svc.Service != nil {
		rt.port, rt.hasPort = rt.svc.Service.Port(o.Port)
	}
	if rt.hasPort {
		for _, ep := range rt.svc.Endpoints {
			if _, ok := ep.TargetPorts[o.Port]; ok {
				rt.endpoints = append(rt.endpoints, ep)
			}
		}
	}
	key := target{service: o.Service, port: o.Port}
	var lb string
	if rt.svc != nil && rt.svc.Service != nil {
		lb = rt.svc.Service.LoadBalancer
	}
	lb = p.balancerName(lb)
	b, ok := p.balancers[key]
	if !ok || b.name != lb {
		b = newBalancer(lb)
		p.balancers[key] = b
		delete(updated, key)
	}
	if !updated[key] {
		b.Update(rt.endpoints)
		updated[key] = true
	}
	rt.bal = b.Balancer
	if err := p.traffic(rt, key); err != nil {
		return nil, fmt.Errorf("service %s: %w", o.Service, err)
	}
	return rt, nil
}

// protocol is how the outbound port's connections are carried.
func (rt *route) protocol() model.Protocol {
	if rt == nil || !rt.hasPort {
		return model.ProtocolDetect
	}
	return rt.port.Protocol
}

// pick chooses an endpoint, other than those skip excludes, and the
// workload port it serves the service port on. The error says, for the
// client, why there is none.
func (rt *route) pick(skip func(*model.Endpoint) bool) (*model.Endpoint, uint32, balance.Done, error) {
	if rt.svc == nil || !rt.hasPort {
		return nil, 0, nil, rt.problem()
	}
	if b := rt.breaker; b != nil && rt.breakerPolicy.Outlier != nil {
		inner := skip
		skip = func(ep *model.Endpoint) bool { return b.outliers.ejected(ep.ID) || inner != nil && inner(ep) }
	}
	ep, done, err := rt.bal.Pick(skip)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("service %s port %d: %w", rt.out.Service, rt.out.Port, err)
	}
	return ep, ep.TargetPorts[rt.out.Port], done, nil
}

// maxConnectAttempts bounds the endpoints one request or connection tries
// when peer proxies cannot be reached. A connect failure means nothing left
// this proxy, so trying another endpoint is safe whatever the method: it is
// what keeps requests from failing while an endpoint that just left is
// still in this proxy's config.
const maxConnectAttempts = 3

// reach calls try with an endpoint of rt not in tried (while there is
// one: a retry goes to another endpoint than the ones that failed it) and
// the workload port to ask for there; while try fails to reach the
// endpoint's peer proxy, it calls it again with an endpoint not tried yet,
// up to maxConnectAttempts in all. Every endpoint it tries joins tried,
// which may be nil. It returns the endpoint of the last try, or nil when
// rt offered none, with try's error or why there was no endpoint. The
// balancer has heard how the earlier tries went; done is for the last one,
// and the caller must call it when that request or connection ends.
func (p *Proxy) reach(ctx context.Context, rt *route, tried map[string]bool, try func(ep *model.Endpoint, port uint32) error) (*model.Endpoint, balance.Done, error) {
	if tried == nil {
		tried = map[string]bool{}
	}
	skip := func(ep *model.Endpoint) bool { return tried[ep.ID] }
	ep, port, done, err := rt.pick(skip)
	if errors.Is(err, balance.ErrAllSkipped) {
		// Every endpoint has had its try: another may go to any of them.
		ep, port, done, err = rt.pick(nil)
	}
	if err != nil {
		return nil, nil, err
	}
	for attempts := 1; ; attempts++ {
		tried[ep.ID] = true
		err = try(ep, port)
		if err == nil || !isConnectFailure(err) || ctx.Err() != nil {
			return ep, done, err
		}
		p.observe(rt, ep, outcomeConnect)
		if attempts >= maxConnectAttempts {
			return ep, done, err
		}
		next, nextPort, nextDone, perr := rt.pick(skip)
		if perr != nil {
			return ep, done, err
		}
		p.log.Debug("peer proxy unreachable; trying another endpoint", "endpoint", ep.ID, "next", next.ID, "error", err)
		done(err)
		ep, port, done = next, nextPort, nextDone
	}
}

// isConnectFailure reports an error from reaching a peer proxy, before
// anything was sent to it.
func isConnectFailure(err error) bool {
	var de *pool.DialError
	return errors.As(err, &de)
}

// problem says why the route carries nothing, or is nil.
func (rt *route) problem() error {
	switch {
	case rt.svc == nil:
		return fmt.Errorf("service %s is not known to the mesh", rt.out.Service)
	case !rt.hasPort:
		return fmt.Errorf("service %s has no port %d", rt.out.Service, rt.out.Port)
	case len(rt.endpoints) == 0:
		return fmt.Errorf("service %s port %d: %w", rt.out.Service, rt.out.Port, balance.ErrNoEndpoints)
	}
	return nil
}

// PeerAccount returns the service account of the peer proxy at addr in
// the config in force: the identity an mTLS dial to addr must find there.
func (p *Proxy) PeerAccount(addr string) (model.Ref, bool) {
	st := p.cur.Load()
	if st == nil {
		return model.Ref{}, false
	}
	sa, ok := st.accounts[addr]
	return sa, ok
}
