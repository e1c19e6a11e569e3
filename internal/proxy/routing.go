package proxy

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/match"
)

// routeTable is a service's route table compiled for one outbound port.
type routeTable struct {
	rules []*routeRule
}

// routeRule is one rule of the table, with its matchers compiled and its
// backends resolved to routes.
type routeRule struct {
	name     string
	path     func(string) bool
	method   string
	headers  []valueMatcher
	query    []valueMatcher
	backends []weightedRoute
	total    uint32
	timeout  time.Duration
	headerOp model.HeaderModifier
}

type valueMatcher struct {
	name  string
	match func(string) bool
}

// weightedRoute is a backend: rt is nil when the mesh has no such
// service, and its share of requests fails.
type weightedRoute struct {
	service string
	rt      *route
	weight  uint32
}

// compileTable compiles the rules of rt's service that apply to its port.
func (p *Proxy) compileTable(cfg *model.ProxyConfig, rt *route, updated map[target]bool) (*routeTable, error) {
	t := &routeTable{}
	for i, tr := range rt.svc.Routes.Rules {
		if tr.Port != 0 && tr.Port != rt.out.Port {
			continue
		}
		r := &routeRule{name: tr.Route, method: tr.Match.Method, timeout: tr.Rule.Timeout, headerOp: tr.Rule.RequestHeaders}
		if tr.Match.Path != nil {
			m, err := match.Path(*tr.Match.Path)
			if err != nil {
				return nil, fmt.Errorf("rule %d (%s): %w", i, tr.Route, err)
			}
			r.path = m
		}
		for _, list := range []struct {
			from []model.ValueMatch
			to   *[]valueMatcher
		}{{tr.Match.Headers, &r.headers}, {tr.Match.Query, &r.query}} {
			for _, v := range list.from {
				m, err := match.Value(v)
				if err != nil {
					return nil, fmt.Errorf("rule %d (%s): %w", i, tr.Route, err)
				}
				*list.to = append(*list.to, valueMatcher{name: v.Name, match: m})
			}
		}
		for _, b := range tr.Rule.Backends {
			port := b.Port
			if port == 0 {
				port = rt.out.Port
			}
			ref := model.Ref{Namespace: rt.out.Service.Namespace, Name: b.Service}
			w := weightedRoute{service: ref.String(), weight: b.Weight}
			if cfg.Services[ref] != nil {
				brt, err := p.targetRoute(cfg, model.Outbound{Service: ref, Port: port, LocalPort: rt.out.LocalPort}, updated)
				if err != nil {
					return nil, err
				}
				w.rt = brt
			}
			r.backends = append(r.backends, w)
			r.total += b.Weight
		}
		t.rules = append(t.rules, r)
	}
	return t, nil
}

// match returns the first rule, in precedence order, that matches r.
func (t *routeTable) match(r *http.Request) *routeRule {
	for _, rule := range t.rules {
		if rule.matches(r) {
			return rule
		}
	}
	return nil
}

// opaque returns the first rule that matches every request: the one an
// opaque TCP connection or a tunnelled upgrade follows.
func (t *routeTable) opaque() *routeRule {
	for _, rule := range t.rules {
		if rule.path == nil && rule.method == "" && len(rule.headers) == 0 && len(rule.query) == 0 {
			return rule
		}
	}
	return nil
}

func (rule *routeRule) matches(r *http.Request) bool {
	if rule.path != nil && !rule.path(r.URL.Path) {
		return false
	}
	if rule.method != "" && r.Method != rule.method {
		return false
	}
	for _, h := range rule.headers {
		if !anyMatch(r.Header.Values(h.name), h.match) {
			return false
		}
	}
	if len(rule.query) > 0 {
		q := r.URL.Query()
		for _, v := range rule.query {
			if !anyMatch(q[v.name], v.match) {
				return false
			}
		}
	}
	return true
}

func anyMatch(values []string, m func(string) bool) bool {
	for _, v := range values {
		if m(v) {
			return true
		}
	}
	return false
}

// errNoBackend is why a rule's share of requests fails: Gateway API says
// 500 for a backend that cannot be resolved, or when every weight is 0.
type errNoBackend struct{ msg string }

func (e errNoBackend) Error() string { return e.msg }

// pick chooses a backend by weight.
func (rule *routeRule) pick() (*route, error) {
	if rule.total == 0 {
		return nil, errNoBackend{fmt.Sprintf("every backend of %s has weight 0", rule.name)}
	}
	n := rand.Uint32N(rule.total)
	for _, b := range rule.backends {
		if n < b.weight {
			if b.rt == nil {
				return nil, errNoBackend{fmt.Sprintf("backend service %s of %s does not exist", b.service, rule.name)}
			}
			return b.rt, nil
		}
		n -= b.weight
	}
	panic("unreachable: weights sum to total")
}

// modifyHeaders applies the rule's request header modifier.
func (rule *routeRule) modifyHeaders(h http.Header) {
	for k, v := range rule.headerOp.Set {
		h.Set(k, v)
	}
	for k, v := range rule.headerOp.Add {
		h.Add(k, v)
	}
	for _, k := range rule.headerOp.Remove {
		h.Del(k)
	}
}

// forRequest resolves where an HTTP request on rt goes: rt itself when no
// route attaches to its service, else a backend of the first rule that
// matches. The rule is nil when none applies; the error says, for the
// client, why the request goes nowhere, with the status to answer.
func (rt *route) forRequest(r *http.Request) (*route, *routeRule, int, error) {
	if rt.table == nil {
		return rt, nil, 0, nil
	}
	rule := rt.table.match(r)
	if rule == nil {
		return nil, nil, http.StatusNotFound, fmt.Errorf("no route of service %s matches %s %s", rt.out.Service, r.Method, r.URL.Path)
	}
	target, err := rule.pick()
	if err != nil {
		return nil, nil, http.StatusInternalServerError, err
	}
	return target, rule, 0, nil
}

// forOpaque resolves where an opaque connection on rt goes: a backend of
// the rule that matches everything, else rt itself (a route with
// conditions cannot judge bytes it cannot read).
func (rt *route) forOpaque() (*route, error) {
	if rt.table == nil {
		return rt, nil
	}
	rule := rt.table.opaque()
	if rule == nil {
		return rt, nil
	}
	return rule.pick()
}
