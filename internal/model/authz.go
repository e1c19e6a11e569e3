package model

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Policy is an object of the mesh's policy layer, beside services and
// workloads: authorization now, routes and traffic policies later. Each
// kind is stored whole and resolved against the others when a snapshot
// is made, so objects may refer to each other in any order.
type Policy interface {
	Key() PolicyKey
	// Validate checks the object alone; errors are FieldErrors joined.
	Validate() error
	// EqualPolicy reports whether o is the same object in every field.
	EqualPolicy(o Policy) bool
}

// PolicyKey names a policy object: kinds have separate name spaces.
type PolicyKey struct {
	Kind string
	Ref  Ref
}

func (k PolicyKey) String() string { return k.Kind + " " + k.Ref.String() }

// Policy kinds.
const (
	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindTrafficTarget       = "TrafficTarget"
	KindHTTPRouteGroup      = "HTTPRouteGroup"
	KindTCPRoute            = "TCPRoute"
)

// AuthzAction is what an authorization policy does with the requests its
// rules match.
type AuthzAction string

const (
	AuthzAllow AuthzAction = "Allow"
	AuthzDeny  AuthzAction = "Deny"
)

// AuthorizationPolicy is weft's own authorization kind: it selects the
// workloads of its namespace whose inbound traffic it governs, and allows
// or denies what its rules match.
type AuthorizationPolicy struct {
	Ref    Ref
	Target PolicyTarget
	Action AuthzAction
	Rules  []AuthzRule
}

// PolicyTarget selects workloads in the policy's namespace by exactly one
// of: a Service (the workloads it selects), a service account, or labels.
type PolicyTarget struct {
	Service        string
	ServiceAccount string
	Selector       map[string]string
}

// AuthzRule matches requests and connections. Each field left empty
// matches anything. A rule with HTTP conditions (methods, paths, headers)
// cannot be checked against a tunnel (opaque TCP, or an upgrade such as
// WebSocket): a deny rule's then matches it, an allow rule's does not.
type AuthzRule struct {
	// From are the source identities; "*" in a field matches any value.
	From    []Principal
	Ports   []uint32
	Methods []string
	Paths   []PathMatch
	// Headers maps a header name to a regular expression (RE2) its value
	// must match whole.
	Headers map[string]string
}

// HasHTTP reports whether the rule looks inside HTTP requests.
func (r *AuthzRule) HasHTTP() bool {
	return len(r.Methods) > 0 || len(r.Paths) > 0 || len(r.Headers) > 0
}

// Principal is a source identity: a service account in a namespace.
// "*" matches any.
type Principal struct {
	Namespace      string
	ServiceAccount string
}

// PathMatchType is how a PathMatch compares.
type PathMatchType string

const (
	PathExact  PathMatchType = "Exact"
	PathPrefix PathMatchType = "PathPrefix"
	// PathRegex matches the whole path with an RE2 expression.
	PathRegex PathMatchType = "RegularExpression"
)

// PathMatch matches a request path.
type PathMatch struct {
	Type  PathMatchType
	Value string
}

// TrafficTarget is SMI's access.smi-spec.io TrafficTarget: the sources
// allowed to reach a destination service account, limited to the routes
// its rules name.
type TrafficTarget struct {
	Ref         Ref
	Destination Principal
	// Port, when set, limits the grant to one destination port.
	Port    uint32
	Sources []Principal
	Rules   []TrafficTargetRule
}

// TrafficTargetRule refers to an HTTPRouteGroup or a TCPRoute in the
// TrafficTarget's namespace; Matches, when set, picks named matches of
// an HTTPRouteGroup.
type TrafficTargetRule struct {
	Kind    string
	Name    string
	Matches []string
}

// HTTPRouteGroup is SMI's specs.smi-spec.io HTTPRouteGroup.
type HTTPRouteGroup struct {
	Ref     Ref
	Matches []HTTPRouteMatch
}

// HTTPRouteMatch is one named match of an HTTPRouteGroup.
type HTTPRouteMatch struct {
	Name string
	// Methods, "*" for any.
	Methods   []string
	PathRegex string
	Headers   map[string]string
}

// TCPRoute is SMI's specs.smi-spec.io TCPRoute.
type TCPRoute struct {
	Ref   Ref
	Ports []uint32
}

// Keys.

func (p *AuthorizationPolicy) Key() PolicyKey { return PolicyKey{KindAuthorizationPolicy, p.Ref} }
func (t *TrafficTarget) Key() PolicyKey       { return PolicyKey{KindTrafficTarget, t.Ref} }
func (g *HTTPRouteGroup) Key() PolicyKey      { return PolicyKey{KindHTTPRouteGroup, g.Ref} }
func (t *TCPRoute) Key() PolicyKey            { return PolicyKey{KindTCPRoute, t.Ref} }

// Equality.

func (p *AuthorizationPolicy) EqualPolicy(o Policy) bool {
	q, ok := o.(*AuthorizationPolicy)
	return ok && p.Ref == q.Ref && p.Action == q.Action && p.Target.equal(q.Target) &&
		slices.EqualFunc(p.Rules, q.Rules, func(a, b AuthzRule) bool { return a.equal(b) })
}

func (t PolicyTarget) equal(o PolicyTarget) bool {
	return t.Service == o.Service && t.ServiceAccount == o.ServiceAccount && maps.Equal(t.Selector, o.Selector)
}

func (r AuthzRule) equal(o AuthzRule) bool {
	return slices.Equal(r.From, o.From) && slices.Equal(r.Ports, o.Ports) && slices.Equal(r.Methods, o.Methods) &&
		slices.Equal(r.Paths, o.Paths) && maps.Equal(r.Headers, o.Headers)
}

func (t *TrafficTarget) EqualPolicy(o Policy) bool {
	q, ok := o.(*TrafficTarget)
	return ok && t.Ref == q.Ref && t.Destination == q.Destination && t.Port == q.Port &&
		slices.Equal(t.Sources, q.Sources) &&
		slices.EqualFunc(t.Rules, q.Rules, func(a, b TrafficTargetRule) bool {
			return a.Kind == b.Kind && a.Name == b.Name && slices.Equal(a.Matches, b.Matches)
		})
}

func (g *HTTPRouteGroup) EqualPolicy(o Policy) bool {
	q, ok := o.(*HTTPRouteGroup)
	return ok && g.Ref == q.Ref && slices.EqualFunc(g.Matches, q.Matches, func(a, b HTTPRouteMatch) bool {
		return a.Name == b.Name && slices.Equal(a.Methods, b.Methods) && a.PathRegex == b.PathRegex && maps.Equal(a.Headers, b.Headers)
	})
}

func (t *TCPRoute) EqualPolicy(o Policy) bool {
	q, ok := o.(*TCPRoute)
	return ok && t.Ref == q.Ref && slices.Equal(t.Ports, q.Ports)
}

// Validation. Field paths are those users write in manifests.

func (p *AuthorizationPolicy) Validate() error {
	var fe FieldErrors
	validateMeta(&fe, p.Ref)
	t := p.Target
	set := 0
	for _, s := range []bool{t.Service != "", t.ServiceAccount != "", len(t.Selector) > 0} {
		if s {
			set++
		}
	}
	if set != 1 {
		fe.Add("spec.targetRef", "name exactly one of a Service, a ServiceAccount, or a workload selector")
	}
	if t.Service != "" {
		validateName(&fe, "spec.targetRef.name", t.Service)
	}
	if t.ServiceAccount != "" {
		validateName(&fe, "spec.targetRef.name", t.ServiceAccount)
	}
	validateLabels(&fe, "spec.selector.matchLabels", t.Selector)
	if p.Action != AuthzAllow && p.Action != AuthzDeny {
		fe.Add("spec.action", "%q: want Allow or Deny", p.Action)
	}
	for i, r := range p.Rules {
		validateRule(&fe, fmt.Sprintf("spec.rules[%d]", i), r)
	}
	return fe.Err()
}

func validateRule(fe *FieldErrors, field string, r AuthzRule) {
	for i, f := range r.From {
		validatePrincipal(fe, fmt.Sprintf("%s.from[%d]", field, i), f)
	}
	for i, port := range r.Ports {
		validatePort(fe, fmt.Sprintf("%s.ports[%d]", field, i), port)
	}
	validateMethods(fe, field+".methods", r.Methods)
	for i, pm := range r.Paths {
		f := fmt.Sprintf("%s.paths[%d]", field, i)
		switch pm.Type {
		case PathExact, PathPrefix:
			if !strings.HasPrefix(pm.Value, "/") {
				fe.Add(f+".value", "%q: a path starts with /", pm.Value)
			}
		case PathRegex:
			validateRegex(fe, f+".value", pm.Value)
		default:
			fe.Add(f+".type", "%q: want Exact, PathPrefix or RegularExpression", pm.Type)
		}
	}
	validateHeaders(fe, field+".headers", r.Headers)
}

func validatePrincipal(fe *FieldErrors, field string, p Principal) {
	if p.Namespace != "*" {
		validateName(fe, field+".namespace", p.Namespace)
	}
	if p.ServiceAccount != "*" {
		validateName(fe, field+".serviceAccount", p.ServiceAccount)
	}
}

func (t *TrafficTarget) Validate() error {
	var fe FieldErrors
	validateMeta(&fe, t.Ref)
	validateName(&fe, "spec.destination.name", t.Destination.ServiceAccount)
	if t.Destination.Namespace != t.Ref.Namespace {
		fe.Add("spec.destination.namespace", "%q: a TrafficTarget grants access to service accounts of its own namespace (%s)", t.Destination.Namespace, t.Ref.Namespace)
	}
	if t.Port != 0 {
		validatePort(&fe, "spec.destination.port", t.Port)
	}
	if len(t.Sources) == 0 {
		fe.Add("spec.sources", "name at least one source service account")
	}
	for i, s := range t.Sources {
		f := fmt.Sprintf("spec.sources[%d]", i)
		validateName(&fe, f+".name", s.ServiceAccount)
		validateName(&fe, f+".namespace", s.Namespace)
	}
	if len(t.Rules) == 0 {
		fe.Add("spec.rules", "name at least one HTTPRouteGroup or TCPRoute")
	}
	for i, r := range t.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		if r.Kind != KindHTTPRouteGroup && r.Kind != KindTCPRoute {
			fe.Add(f+".kind", "%q: want HTTPRouteGroup or TCPRoute", r.Kind)
		}
		validateName(&fe, f+".name", r.Name)
		if r.Kind == KindTCPRoute && len(r.Matches) > 0 {
			fe.Add(f+".matches", "a TCPRoute has no named matches")
		}
	}
	return fe.Err()
}

func (g *HTTPRouteGroup) Validate() error {
	var fe FieldErrors
	validateMeta(&fe, g.Ref)
	if len(g.Matches) == 0 {
		fe.Add("spec.matches", "name at least one match")
	}
	names := map[string]bool{}
	for i, m := range g.Matches {
		f := fmt.Sprintf("spec.matches[%d]", i)
		if m.Name == "" {
			fe.Add(f+".name", "must not be empty")
		} else if names[m.Name] {
			fe.Add(f+".name", "%q is used by an earlier match", m.Name)
		}
		names[m.Name] = true
		validateMethods(&fe, f+".methods", m.Methods)
		if m.PathRegex != "" {
			validateRegex(&fe, f+".pathRegex", m.PathRegex)
		}
		validateHeaders(&fe, f+".headers", m.Headers)
	}
	return fe.Err()
}

func (t *TCPRoute) Validate() error {
	var fe FieldErrors
	validateMeta(&fe, t.Ref)
	for i, port := range t.Ports {
		validatePort(&fe, fmt.Sprintf("spec.matches.ports[%d]", i), port)
	}
	return fe.Err()
}

func validateMeta(fe *FieldErrors, r Ref) {
	validateName(fe, "metadata.namespace", r.Namespace)
	validateName(fe, "metadata.name", r.Name)
}

func validateName(fe *FieldErrors, field, s string) {
	if err := ValidateDNSLabel(s); err != nil {
		fe.Add(field, "%v", err)
	}
}

// httpMethods are the methods a rule may name; "*" matches any.
var httpMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace, "*"}

func validateMethods(fe *FieldErrors, field string, methods []string) {
	for i, m := range methods {
		if !slices.Contains(httpMethods, m) {
			fe.Add(fmt.Sprintf("%s[%d]", field, i), "%q: want an HTTP method in upper case, or *", m)
		}
	}
}

// maxRegexLen bounds a user's regular expression; RE2 runs in linear time,
// but a huge one still costs memory in every proxy.
const maxRegexLen = 1024

func validateRegex(fe *FieldErrors, field, re string) {
	if len(re) > maxRegexLen {
		fe.Add(field, "longer than %d bytes", maxRegexLen)
		return
	}
	if _, err := regexp.Compile(re); err != nil {
		fe.Add(field, "%q: %v", re, err)
	}
}

func validateHeaders(fe *FieldErrors, field string, headers map[string]string) {
	for _, name := range slices.Sorted(maps.Keys(headers)) {
		if name == "" || strings.ContainsAny(name, " :\t\r\n") {
			fe.Add(field, "%q is not a header name", name)
		}
		validateRegex(fe, field+"."+name, headers[name])
	}
}

// Authz is one workload's inbound authorization, resolved from every
// policy that selects it. It is immutable; a snapshot keeps the same
// pointer while nothing that resolves into it changes.
type Authz struct {
	// Selected is set when an allow policy (an AuthorizationPolicy with
	// Allow, or a TrafficTarget) selects the workload: then what no rule
	// allows is denied. Otherwise everything the deny rules leave is
	// allowed.
	Selected bool
	Allow    []AuthzGrant
	Deny     []AuthzGrant
	// Permissive lets plaintext clients from outside the mesh in beside
	// mTLS peers; they have no identity, so rules naming sources never
	// match them.
	Permissive bool
	// RateLimit bounds the requests and connections the workload takes;
	// nil is no bound.
	RateLimit *RateLimit
}

// RateLimit is a RateLimitPolicy as it applies to one workload.
type RateLimit struct {
	Policy            string
	RequestsPerSecond uint32
	Burst             uint32
}

// Validate checks every rule, as a proxy does with what it receives.
func (a *Authz) Validate() error {
	var fe FieldErrors
	if r := a.RateLimit; r != nil {
		if r.Policy == "" {
			fe.Add("rateLimit.policy", "must not be empty")
		}
		(&RateLimitPolicy{RequestsPerSecond: r.RequestsPerSecond, Burst: r.Burst}).validateSpec(&fe)
	}
	for _, list := range []struct {
		name   string
		grants []AuthzGrant
	}{{"allow", a.Allow}, {"deny", a.Deny}} {
		for i, g := range list.grants {
			field := fmt.Sprintf("%s[%d]", list.name, i)
			if g.Policy == "" {
				fe.Add(field+".policy", "must not be empty")
			}
			validateRule(&fe, field+".rule", g.Rule)
		}
	}
	return fe.Err()
}

// AuthzGrant is a rule with the policy it comes from, which decisions
// name.
type AuthzGrant struct {
	Policy string
	Rule   AuthzRule
}

// Equal reports whether two resolved authorizations are the same.
func (a *Authz) Equal(o *Authz) bool {
	if a == nil || o == nil {
		return a == o
	}
	eq := func(x, y AuthzGrant) bool { return x.Policy == y.Policy && x.Rule.equal(y.Rule) }
	return a.Selected == o.Selected && a.Permissive == o.Permissive && slices.EqualFunc(a.Allow, o.Allow, eq) && slices.EqualFunc(a.Deny, o.Deny, eq) &&
		(a.RateLimit == nil) == (o.RateLimit == nil) && (a.RateLimit == nil || *a.RateLimit == *o.RateLimit)
}

// MTLSMode is whether a workload's inbound accepts plaintext beside mTLS.
type MTLSMode string

const (
	// MTLSUnset defers to the mesh-wide mode.
	MTLSUnset MTLSMode = ""
	// MTLSStrict accepts mTLS peers only: the default.
	MTLSStrict MTLSMode = "strict"
	// MTLSPermissive also accepts plaintext clients from outside the mesh,
	// so services can be onboarded one at a time.
	MTLSPermissive MTLSMode = "permissive"
)

// MTLSModeAnnotation on a Service sets the mTLS mode of the workloads it
// selects.
const MTLSModeAnnotation = "weft.dev/mtls-mode"

// ParseMTLSMode reads a mode as users write it.
func ParseMTLSMode(s string) (MTLSMode, error) {
	switch m := MTLSMode(strings.ToLower(s)); m {
	case MTLSUnset, MTLSStrict, MTLSPermissive:
		return m, nil
	}
	return "", fmt.Errorf("%q: want strict or permissive", s)
}

// authzScope is what a workload's authorization resolves against: its
// namespace's policies (sorted) and services, any policy by key, and the
// mesh-wide mTLS mode.
type authzScope struct {
	policies []Policy
	services map[string]*Service
	lookup   func(PolicyKey) Policy
	meshMTLS MTLSMode
}

// resolveAuthz gathers the policies of w's namespace that select it and
// the mTLS mode its services ask for. It returns nil when no policy
// selects it and it is strict.
func resolveAuthz(w *Workload, scope authzScope) *Authz {
	a := &Authz{Permissive: workloadMTLS(w, scope) == MTLSPermissive}
	services := func(name string) *Service { return scope.services[name] }
	lookup := scope.lookup
	for _, p := range scope.policies {
		switch p := p.(type) {
		case *AuthorizationPolicy:
			if !p.selects(w, services) {
				continue
			}
			name := p.Key().String()
			var grants []AuthzGrant
			for _, r := range p.Rules {
				grants = append(grants, AuthzGrant{Policy: name, Rule: r})
			}
			if p.Action == AuthzDeny {
				a.Deny = append(a.Deny, grants...)
				continue
			}
			a.Selected = true
			a.Allow = append(a.Allow, grants...)
		case *TrafficTarget:
			if p.Destination != w.Identity().principal() {
				continue
			}
			a.Selected = true
			a.Allow = append(a.Allow, p.grants(lookup)...)
		case *RateLimitPolicy:
			if a.RateLimit != nil || w.Ref.Namespace != p.Ref.Namespace {
				continue // the first by name is in force
			}
			if svc := services(p.Service); svc != nil && svc.Selects(w.Labels) {
				a.RateLimit = &RateLimit{Policy: p.Key().String(), RequestsPerSecond: p.RequestsPerSecond, Burst: p.Burst}
			}
		}
	}
	if !a.Selected && len(a.Deny) == 0 && !a.Permissive && a.RateLimit == nil {
		return nil
	}
	return a
}

// workloadMTLS is the mode of the services that select w, strict winning
// over permissive (a workload behind two services is only as open as the
// stricter asks), or else the mesh's.
func workloadMTLS(w *Workload, scope authzScope) MTLSMode {
	mode := MTLSUnset
	for _, svc := range scope.services {
		if svc.MTLSMode == MTLSUnset || !svc.Selects(w.Labels) {
			continue
		}
		if svc.MTLSMode == MTLSStrict {
			return MTLSStrict
		}
		mode = svc.MTLSMode
	}
	if mode == MTLSUnset {
		return scope.meshMTLS
	}
	return mode
}

func (r Ref) principal() Principal { return Principal{Namespace: r.Namespace, ServiceAccount: r.Name} }

func (p *AuthorizationPolicy) selects(w *Workload, services func(string) *Service) bool {
	if w.Ref.Namespace != p.Ref.Namespace {
		return false
	}
	switch t := p.Target; {
	case t.Service != "":
		svc := services(t.Service)
		return svc != nil && svc.Selects(w.Labels)
	case t.ServiceAccount != "":
		return w.Identity().Name == t.ServiceAccount
	default:
		return (&Service{Selector: t.Selector}).Selects(w.Labels)
	}
}

// grants resolves a TrafficTarget's rules against the route objects they
// name. A rule naming a route that does not exist (yet) grants nothing:
// the destination stays closed to it, which is the safe side.
func (t *TrafficTarget) grants(lookup func(PolicyKey) Policy) []AuthzGrant {
	name := t.Key().String()
	var ports []uint32
	if t.Port != 0 {
		ports = []uint32{t.Port}
	}
	var out []AuthzGrant
	add := func(r AuthzRule) {
		r.From = t.Sources
		if r.Ports == nil {
			r.Ports = ports
		}
		out = append(out, AuthzGrant{Policy: name, Rule: r})
	}
	for _, rr := range t.Rules {
		ref := Ref{Namespace: t.Ref.Namespace, Name: rr.Name}
		switch route := lookup(PolicyKey{rr.Kind, ref}).(type) {
		case *HTTPRouteGroup:
			for _, m := range route.Matches {
				if len(rr.Matches) > 0 && !slices.Contains(rr.Matches, m.Name) {
					continue
				}
				r := AuthzRule{Headers: m.Headers}
				if !slices.Contains(m.Methods, "*") {
					r.Methods = m.Methods
				}
				if m.PathRegex != "" {
					r.Paths = []PathMatch{{Type: PathRegex, Value: m.PathRegex}}
				}
				add(r)
			}
		case *TCPRoute:
			r := AuthzRule{Ports: route.Ports}
			if len(route.Ports) > 0 && t.Port != 0 {
				r.Ports = slices.DeleteFunc(slices.Clone(route.Ports), func(p uint32) bool { return p != t.Port })
				if len(r.Ports) == 0 {
					continue // the route's ports and the destination's do not meet
				}
			}
			add(r)
		}
	}
	return out
}

// comparePolicyKeys orders keys by kind, namespace and name, so resolution
// is deterministic.
func comparePolicyKeys(a, b PolicyKey) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), CompareRefs(a.Ref, b.Ref))
}
