package model

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// A route is admitted when everything it names exists (backend and mirror
// Services, HTTPRouteGroups) and none of its matches is already taken on
// the same Service and port by another route of its API (Gateway API
// routes among themselves, TrafficSplits among themselves: Gateway API
// routes win over TrafficSplits as a whole). Only admitted routes are in
// force. A route that is not admitted keeps its last admitted version in
// force, so a bad edit never changes routing, and is admitted by itself
// once what it lacked appears: Kubernetes delivers objects in any order.
//
// Routes already in force keep their matches; among the others, the
// route's key (kind, namespace, name) decides, as Gateway API's
// alphabetical tie-break does.

// RouteInForce returns the version of a route that is in force: the one
// stored, or the last admitted one while the stored one is rejected.
func (s *Snapshot) RouteInForce(k PolicyKey) (*Route, bool) {
	a, ok := s.admitted[k]
	return a.inForce, ok
}

// admission is a route admitted: the version stored then, and what is in
// force, that version with its references resolved.
type admission struct {
	stored, inForce *Route
}

// RouteRejection returns why the stored version of a route is not
// admitted, nil when it is.
func (s *Snapshot) RouteRejection(k PolicyKey) error { return s.rejected[k] }

// RouteRejections returns every route that is not admitted, by key.
func (s *Snapshot) RouteRejections() map[PolicyKey]error { return s.rejected }

// RejectedRoutes returns the keys of the routes not admitted, in the
// order of their names, for listing them.
func (s *Snapshot) RejectedRoutes() []PolicyKey {
	return slices.SortedFunc(maps.Keys(s.rejected), func(a, b PolicyKey) int { return strings.Compare(a.String(), b.String()) })
}

// admitRoutes admits the routes of namespace ns again and reports whether
// the routes in force changed.
func (b *batch) admitRoutes(ns string) bool {
	var stored []*Route
	for _, p := range b.nsPolicyList(ns) {
		if r, ok := p.(*Route); ok {
			stored = append(stored, r)
		}
	}
	// Routes whose stored version is in force claim their matches first,
	// then routes that changed, each in key order.
	slices.SortStableFunc(stored, func(x, y *Route) int {
		rank := func(r *Route) int {
			if cur, ok := b.next.admitted[r.Key()]; ok && cur.stored.EqualPolicy(r) {
				return 0
			}
			return 1
		}
		return rank(x) - rank(y)
	})
	taken := claims{}
	admitted := map[PolicyKey]admission{}
	rejected := map[PolicyKey]error{}
	for _, r := range stored {
		k := r.Key()
		cand, fe := b.resolveRefs(r)
		fe = append(fe, taken.check(cand)...)
		if len(fe) == 0 {
			if prev, ok := b.next.admitted[k]; ok && prev.inForce.EqualPolicy(cand) {
				cand = prev.inForce
			}
			admitted[k] = admission{stored: r, inForce: cand}
			taken.add(cand)
			continue
		}
		rejected[k] = &ObjectError{Kind: k.Kind, Ref: k.Ref, Err: r.renamed(fe).Err()}
		if prev, ok := b.next.admitted[k]; ok {
			admitted[k] = prev
			taken.add(prev.inForce)
		}
	}
	changed := false
	for k, prev := range b.next.admitted {
		if k.Ref.Namespace != ns {
			continue
		}
		if cur, ok := admitted[k]; !ok || cur.inForce != prev.inForce {
			changed = true
		}
	}
	for k, cur := range admitted {
		if prev, ok := b.next.admitted[k]; !ok || prev.inForce != cur.inForce {
			changed = true
		}
	}
	b.next.admitted = replaceNamespace(b.next.admitted, ns, admitted)
	b.next.rejected = replaceNamespace(b.next.rejected, ns, rejected)
	return changed
}

// replaceNamespace returns a copy of m whose entries of namespace ns are
// those of with.
func replaceNamespace[V any](m map[PolicyKey]V, ns string, with map[PolicyKey]V) map[PolicyKey]V {
	out := make(map[PolicyKey]V, len(m)+len(with))
	for k, v := range m {
		if k.Ref.Namespace != ns {
			out[k] = v
		}
	}
	maps.Copy(out, with)
	return out
}

// resolveRefs checks that the Services and HTTPRouteGroups a route names
// exist, and returns the route with its groups' matches in its rules.
func (b *batch) resolveRefs(r *Route) (*Route, FieldErrors) {
	var fe FieldErrors
	ns := r.Ref.Namespace
	service := func(field, name string) {
		if _, ok := b.services[Ref{ns, name}]; !ok {
			fe.Add(field, "service %s does not exist", Ref{ns, name})
		}
	}
	out := r
	for i, rule := range r.Rules {
		field := fmt.Sprintf("spec.rules[%d]", i)
		for j, be := range rule.Backends {
			service(fmt.Sprintf("%s.backendRefs[%d].name", field, j), be.Service)
		}
		if m := rule.Mirror; m != nil {
			service(field+".filters.requestMirror.backendRef.name", m.Service)
		}
		if len(rule.Groups) == 0 {
			continue
		}
		if out == r {
			out = &Route{Kind: r.Kind, Ref: r.Ref, Parents: r.Parents, Rules: slices.Clone(r.Rules)}
		}
		expanded := rule
		expanded.Groups, expanded.Matches = nil, slices.Clone(rule.Matches)
		for j, name := range rule.Groups {
			g, ok := b.policies[PolicyKey{KindHTTPRouteGroup, Ref{ns, name}}].obj.(*HTTPRouteGroup)
			if !ok {
				fe.Add(fmt.Sprintf("%s.groups[%d]", field, j), "HTTPRouteGroup %s does not exist", Ref{ns, name})
				continue
			}
			for _, m := range g.Matches {
				expanded.Matches = append(expanded.Matches, m.routeMatches()...)
			}
		}
		out.Rules[i] = expanded
	}
	return out, fe
}

// routeMatches turns an SMI HTTPRouteGroup match into route matches, one
// per method it names.
func (m HTTPRouteMatch) routeMatches() []RouteMatch {
	var base RouteMatch
	if m.PathRegex != "" {
		base.Path = &PathMatch{Type: PathRegex, Value: m.PathRegex}
	}
	for _, name := range slices.Sorted(maps.Keys(m.Headers)) {
		base.Headers = append(base.Headers, ValueMatch{Name: name, Value: m.Headers[name], Regex: true})
	}
	if len(m.Methods) == 0 || slices.Contains(m.Methods, "*") {
		return []RouteMatch{base}
	}
	out := make([]RouteMatch, len(m.Methods))
	for i, method := range m.Methods {
		out[i] = base
		out[i].Method = method
	}
	return out
}

// claims are the matches admitted routes take, by API, parent Service
// and match.
type claims map[claimKey][]claim

type claimKey struct {
	smi     bool
	service string
	match   string
}

type claim struct {
	port  uint32
	owner string
}

func claimKeys(r *Route, p RouteParent, rule RouteRule) []claimKey {
	out := make([]claimKey, max(1, len(rule.Matches)))
	for j := range out {
		out[j] = claimKey{smi: r.Kind == KindTrafficSplit, service: p.Service, match: matchKey(rule, j)}
	}
	return out
}

// check reports each match of r that a route already admitted takes on
// the same Service and an overlapping port.
func (c claims) check(r *Route) FieldErrors {
	var fe FieldErrors
	for _, p := range r.Parents {
		for i, rule := range r.Rules {
			fields := ruleMatchFields(rule, fmt.Sprintf("spec.rules[%d]", i))
			for j, k := range claimKeys(r, p, rule) {
				for _, o := range c[k] {
					if o.port == 0 || p.Port == 0 || o.port == p.Port {
						fe.Add(fields[j], "the same match as %s on service %s, which is in force", o.owner, p.Service)
						break
					}
				}
			}
		}
	}
	return fe
}

func (c claims) add(r *Route) {
	for _, p := range r.Parents {
		for i, rule := range r.Rules {
			fields := ruleMatchFields(rule, fmt.Sprintf("spec.rules[%d]", i))
			for j, k := range claimKeys(r, p, rule) {
				c[k] = append(c[k], claim{port: p.Port, owner: r.Key().String() + " " + r.renamedField(fields[j])})
			}
		}
	}
}

// renamedField is a field path of r in the terms of its kind.
func (r *Route) renamedField(field string) string {
	return r.renamed(FieldErrors{{Field: field}})[0].Field
}
