package proxy

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/match"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
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
	// rule is the model's rule: timeouts and filters. prefix is the path
	// prefix the rule matched, for ReplacePrefixMatch.
	rule   model.RouteRule
	prefix string
	mirror *route // nil when the rule mirrors nothing, or to no service
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
		r := &routeRule{name: tr.Route, method: tr.Match.Method, rule: tr.Rule}
		if pm := tr.Match.Path; pm != nil && pm.Type == model.PathPrefix {
			r.prefix = pm.Value
		}
		if m := tr.Rule.Mirror; m != nil {
			port := cmp.Or(m.Port, rt.out.Port)
			ref := model.Ref{Namespace: rt.out.Service.Namespace, Name: m.Service}
			if cfg.Services[ref] != nil {
				mrt, err := p.targetRoute(cfg, model.Outbound{Service: ref, Port: port, LocalPort: rt.out.LocalPort}, updated)
				if err != nil {
					return nil, err
				}
				r.mirror = mrt
			}
		}
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

// applyHeaders sets, adds and removes headers as op says.
func applyHeaders(h http.Header, op model.HeaderModifier) {
	for k, v := range op.Set {
		h.Set(k, v)
	}
	for k, v := range op.Add {
		h.Add(k, v)
	}
	for _, k := range op.Remove {
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
	if rule.rule.Redirect != nil {
		return nil, rule, 0, nil // answered by the proxy: see redirect
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

// replacePath applies a path modifier to path, whose prefix the rule
// matched (Gateway API: /foo/bar with prefix /foo and /xyz is /xyz/bar).
func replacePath(pm model.PathModifier, path, prefix string) string {
	switch pm.Type {
	case model.ReplaceFullPath:
		return pm.Value
	case model.ReplacePrefixMatch:
		rest := strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
		out := strings.TrimSuffix(pm.Value, "/") + rest
		if out == "" || out[0] != '/' {
			out = "/" + out
		}
		return out
	}
	return path
}

// redirect answers r, which came for service port servicePort, with the
// rule's redirect. The host and path it leaves empty are the request's;
// the port it leaves empty is, as Gateway API says, the scheme's
// well-known one when it names a scheme, else the port the request came
// for (the Service's, in a mesh).
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request, rule *routeRule, servicePort uint32) {
	rd := rule.rule.Redirect
	scheme := cmp.Or(rd.Scheme, "http")
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if rd.Hostname != "" {
		host = rd.Hostname
	}
	port := ""
	switch {
	case rd.Port != 0:
		port = strconv.FormatUint(uint64(rd.Port), 10)
	case rd.Scheme == "" && servicePort != 80:
		port = strconv.FormatUint(uint64(servicePort), 10)
	}
	u := url.URL{Scheme: scheme, Host: host, Path: replacePath(rd.Path, r.URL.Path, rule.prefix), RawQuery: r.URL.RawQuery}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	w.Header().Set("Location", u.String())
	w.WriteHeader(int(rd.StatusCode))
}

// rewrite changes r's host and path as the rule's URLRewrite says.
func (rule *routeRule) rewrite(r *http.Request) {
	rw := rule.rule.Rewrite
	if rw == nil {
		return
	}
	if rw.Hostname != "" {
		r.Host = rw.Hostname
	}
	if rw.Path.Type != "" {
		r.URL.Path = replacePath(rw.Path, r.URL.Path, rule.prefix)
		r.URL.RawPath = ""
	}
}

// mirror sends a copy of r, for the share of requests the rule says, to
// the mirror service, and drops its answer. A body is copied only when
// its length is known and small; other requests are not mirrored. The
// mirror service's circuit breaker bounds its copies with its requests in
// flight: a copy that finds no place is dropped, never queued.
func (p *Proxy) mirror(r *http.Request, rule *routeRule) {
	m := rule.rule.Mirror
	if rule.mirror == nil || rand.Float64()*100 >= m.Percent {
		return
	}
	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength < 0 || r.ContentLength > maxReplayBody {
			return
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, maxReplayBody+1))
		if err != nil {
			return
		}
		body = b
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	out := r.Clone(p.ctx)
	out.RequestURI = ""
	proto := meshheader.ProtoOf(r)
	go func() {
		if b := rule.mirror.breaker; b != nil {
			release, ok := b.tryAdmit()
			if !ok {
				p.metrics.circuitOpen.WithLabelValues(rule.mirror.out.Service.String(), openMirror).Inc()
				return
			}
			defer release()
		}
		ctx, cancel := context.WithTimeout(p.ctx, mirrorTimeout)
		defer cancel()
		_, done, err := p.reach(ctx, rule.mirror, nil, func(ep *model.Endpoint, port uint32) error {
			req := out.Clone(ctx)
			req.URL.Scheme, req.URL.Host = "http", ep.HostPort()
			req.Body = io.NopCloser(bytes.NewReader(body))
			meshheader.Strip(req.Header)
			maps.Copy(req.Header, meshHeader(port, proto))
			resp, err := p.pool.RoundTrip(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		})
		if done != nil {
			done(err)
		}
		p.metrics.mirrors.WithLabelValues(rule.mirror.out.Service.String()).Inc()
	}()
}

// mirrorTimeout bounds a mirrored request: nobody waits for its answer.
const mirrorTimeout = 10 * time.Second
