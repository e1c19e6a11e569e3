package model

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Route kinds: Gateway API's GAMMA routes and SMI's TrafficSplit all
// become Routes, so one route model serves every API users write.
const (
	KindHTTPRoute    = "HTTPRoute"
	KindGRPCRoute    = "GRPCRoute"
	KindTrafficSplit = "TrafficSplit"
)

// Route is a set of rules for requests to parent Services of its
// namespace (Gateway API's GAMMA profile: a route attached to a Service
// governs the mesh's calls to it).
type Route struct {
	Kind    string
	Ref     Ref
	Parents []RouteParent
	Rules   []RouteRule
}

// RouteParent is a Service of the route's namespace, on one port or, when
// Port is 0, on all of them.
type RouteParent struct {
	Service string
	Port    uint32
}

// RouteRule sends the requests its matches select to its backends.
type RouteRule struct {
	// Matches: a request matching any is routed by the rule; none matches
	// every request.
	Matches  []RouteMatch
	Backends []RouteBackend
	// Timeout bounds the whole request, retries included; 0 is none.
	Timeout time.Duration
	// RequestHeaders change the request before it goes to the backend;
	// ResponseHeaders change the answer before it goes to the caller.
	RequestHeaders, ResponseHeaders HeaderModifier
	// BackendTimeout bounds each request to a backend, until its answer's
	// headers; 0 is none.
	BackendTimeout time.Duration
	// Redirect answers the request with a redirect instead of sending it
	// on; a rule with one has no backends.
	Redirect *Redirect
	// Rewrite changes the request's host or path on its way.
	Rewrite *Rewrite
	// Mirror sends a copy of a share of the requests to another Service,
	// whose answers are dropped.
	Mirror *Mirror
	// Groups name HTTPRouteGroups of the route's namespace (a
	// TrafficSplit's matches): their matches join Matches when the route
	// is admitted, and requests they do not match go to the parent
	// Service itself.
	Groups []string
}

// Redirect is Gateway API's RequestRedirect: each field left empty keeps
// the request's own.
type Redirect struct {
	Scheme   string
	Hostname string
	Port     uint32
	// Path: the zero value keeps the request's.
	Path       PathModifier
	StatusCode uint32
}

// Rewrite is Gateway API's URLRewrite.
type Rewrite struct {
	Hostname string
	// Path: the zero value keeps the request's.
	Path PathModifier
}

// PathModifier replaces a path whole, or the prefix the rule matched.
type PathModifier struct {
	// Type is ReplaceFullPath or ReplacePrefixMatch.
	Type  string
	Value string
}

// Path modifier types.
const (
	ReplaceFullPath    = "ReplaceFullPath"
	ReplacePrefixMatch = "ReplacePrefixMatch"
)

// Mirror is Gateway API's RequestMirror.
type Mirror struct {
	Service string
	Port    uint32
	// Percent of the requests mirrored, 0 to 100.
	Percent float64
}

// RouteMatch selects requests by every field set.
type RouteMatch struct {
	Path    *PathMatch
	Method  string
	Headers []ValueMatch
	Query   []ValueMatch
}

// ValueMatch matches a header or query parameter by name.
type ValueMatch struct {
	Name  string
	Value string
	// Regex: Value is an RE2 expression the value must match whole.
	Regex bool
}

// HeaderModifier sets, adds and removes headers.
type HeaderModifier struct {
	Set    map[string]string
	Add    map[string]string
	Remove []string
}

// IsZero reports whether the modifier changes nothing.
func (h HeaderModifier) IsZero() bool {
	return len(h.Set) == 0 && len(h.Add) == 0 && len(h.Remove) == 0
}

// RouteBackend is a Service of the route's namespace that takes a share
// of the rule's requests. Port 0 is the port the request came for.
type RouteBackend struct {
	Service string
	Port    uint32
	Weight  uint32
}

// Key implements Policy: routes are stored in the policy layer.
func (r *Route) Key() PolicyKey { return PolicyKey{Kind: r.Kind, Ref: r.Ref} }

// EqualPolicy implements Policy.
func (r *Route) EqualPolicy(o Policy) bool {
	q, ok := o.(*Route)
	return ok && r.Kind == q.Kind && r.Ref == q.Ref && slices.Equal(r.Parents, q.Parents) &&
		slices.EqualFunc(r.Rules, q.Rules, RouteRule.Equal)
}

// Equal reports whether two rules are the same.
func (r RouteRule) Equal(o RouteRule) bool {
	return slices.EqualFunc(r.Matches, o.Matches, RouteMatch.Equal) && slices.Equal(r.Backends, o.Backends) &&
		r.Timeout == o.Timeout && r.RequestHeaders.Equal(o.RequestHeaders) && r.ResponseHeaders.Equal(o.ResponseHeaders) &&
		r.BackendTimeout == o.BackendTimeout && equalPtr(r.Redirect, o.Redirect) && equalPtr(r.Rewrite, o.Rewrite) && equalPtr(r.Mirror, o.Mirror) &&
		slices.Equal(r.Groups, o.Groups)
}

func equalPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// Equal reports whether two matches are the same.
func (m RouteMatch) Equal(o RouteMatch) bool {
	samePath := (m.Path == nil) == (o.Path == nil) && (m.Path == nil || *m.Path == *o.Path)
	return samePath && m.Method == o.Method && slices.Equal(m.Headers, o.Headers) && slices.Equal(m.Query, o.Query)
}

// Equal reports whether two modifiers are the same.
func (h HeaderModifier) Equal(o HeaderModifier) bool {
	return maps.Equal(h.Set, o.Set) && maps.Equal(h.Add, o.Add) && slices.Equal(h.Remove, o.Remove)
}

// maxWeight bounds a backend's weight, as Gateway API does.
const maxWeight = 1_000_000

// Validate implements Policy. Field paths are Gateway API's; a
// TrafficSplit's converter maps its own.
func (r *Route) Validate() error {
	var fe FieldErrors
	validateMeta(&fe, r.Ref)
	if len(r.Parents) == 0 {
		fe.Add("spec.parentRefs", "name at least one Service")
	}
	for i, p := range r.Parents {
		f := fmt.Sprintf("spec.parentRefs[%d]", i)
		validateName(&fe, f+".name", p.Service)
		if p.Port != 0 {
			validatePort(&fe, f+".port", p.Port)
		}
	}
	for i, rule := range r.Rules {
		rule.validate(&fe, fmt.Sprintf("spec.rules[%d]", i))
	}
	validateDistinctMatches(&fe, r.Rules)
	return r.renamed(fe).Err()
}

// validateDistinctMatches refuses a match given twice in one route: the
// second could never be taken, which is always a mistake.
func validateDistinctMatches(fe *FieldErrors, rules []RouteRule) {
	first := map[string]string{}
	for i, rule := range rules {
		for j, f := range ruleMatchFields(rule, fmt.Sprintf("spec.rules[%d]", i)) {
			k := matchKey(rule, j)
			if prev, ok := first[k]; ok {
				fe.Add(f, "the same match as %s: a request can take only the first", prev)
				continue
			}
			first[k] = f
		}
	}
}

// ruleMatchFields names the field of each match of a rule; a rule
// without matches has one, which matches every request.
func ruleMatchFields(rule RouteRule, field string) []string {
	if len(rule.Matches) == 0 {
		return []string{field + ".matches"}
	}
	out := make([]string, len(rule.Matches))
	for j := range rule.Matches {
		out[j] = fmt.Sprintf("%s.matches[%d]", field, j)
	}
	return out
}

// matchKey is the j-th match of a rule in a form equal for equal matches
// whatever the order of their header and query matches; a rule's groups
// are part of it until they are resolved.
func matchKey(rule RouteRule, j int) string {
	var m RouteMatch
	if len(rule.Matches) > 0 {
		m = rule.Matches[j]
	}
	return m.key() + " groups=" + strings.Join(rule.Groups, ",")
}

func (m RouteMatch) key() string {
	sorted := func(vs []ValueMatch) []ValueMatch {
		return slices.SortedFunc(slices.Values(vs), func(a, b ValueMatch) int {
			return cmp.Or(cmp.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), cmp.Compare(a.Value, b.Value))
		})
	}
	path := "-"
	if m.Path != nil {
		path = fmt.Sprintf("%s:%q", m.Path.Type, m.Path.Value)
	}
	return fmt.Sprintf("path=%s method=%s headers=%v query=%v", path, m.Method, sorted(m.Headers), sorted(m.Query))
}

// renamed maps the field paths of a route's errors, which are Gateway
// API's HTTPRoute paths, to those of the kind users wrote.
func (r *Route) renamed(fe FieldErrors) FieldErrors {
	var rename func(string) string
	switch r.Kind {
	case KindTrafficSplit:
		rename = splitFieldName
	case KindGRPCRoute:
		rename = grpcFieldName
	default:
		return fe
	}
	out := make(FieldErrors, len(fe))
	for i, e := range fe {
		out[i] = &FieldError{Field: rename(e.Field), Msg: e.Msg}
	}
	return out
}

// splitFields map the model's field paths to a TrafficSplit's own; the
// first pattern that matches applies.
var splitFields = []struct {
	from *regexp.Regexp
	to   string
}{
	{regexp.MustCompile(`^spec\.parentRefs(\[0\]\.name)?$`), "spec.service"},
	{regexp.MustCompile(`^spec\.rules\[0\]\.backendRefs\[(\d+)\]\.name$`), "spec.backends[$1].service"},
	{regexp.MustCompile(`^spec\.rules\[0\]\.backendRefs`), "spec.backends"},
	{regexp.MustCompile(`^spec\.rules\[0\]\.groups`), "spec.matches"},
	{regexp.MustCompile(`^spec\.rules\[0\]\.matches.*`), "spec.matches"},
	{regexp.MustCompile(`^spec\.rules\[\d+\]`), "spec"},
}

func splitFieldName(field string) string {
	for _, m := range splitFields {
		if m.from.MatchString(field) {
			return m.from.ReplaceAllString(field, m.to)
		}
	}
	return field
}

// grpcPathField is where the model reports the path a GRPCRoute's method
// match became.
var grpcPathField = regexp.MustCompile(`^(spec\.rules\[\d+\]\.matches\[\d+\])\.path\.(?:value|type)$`)

func grpcFieldName(field string) string { return grpcPathField.ReplaceAllString(field, "$1.method") }

func (r RouteRule) validate(fe *FieldErrors, field string) {
	if len(r.Backends) == 0 && r.Redirect == nil {
		fe.Add(field+".backendRefs", "name at least one backend Service")
	}
	for i, g := range r.Groups {
		validateName(fe, fmt.Sprintf("%s.groups[%d]", field, i), g)
	}
	for i, b := range r.Backends {
		f := fmt.Sprintf("%s.backendRefs[%d]", field, i)
		validateName(fe, f+".name", b.Service)
		if b.Port != 0 {
			validatePort(fe, f+".port", b.Port)
		}
		if b.Weight > maxWeight {
			fe.Add(f+".weight", "%d: at most %d", b.Weight, maxWeight)
		}
	}
	if r.Timeout < 0 {
		fe.Add(field+".timeouts.request", "must not be negative")
	}
	for i, m := range r.Matches {
		f := fmt.Sprintf("%s.matches[%d]", field, i)
		if m.Path != nil {
			switch m.Path.Type {
			case PathExact, PathPrefix:
				if !strings.HasPrefix(m.Path.Value, "/") {
					fe.Add(f+".path.value", "%q: a path starts with /", m.Path.Value)
				}
			case PathRegex:
				validateRegex(fe, f+".path.value", m.Path.Value)
			default:
				fe.Add(f+".path.type", "%q: want Exact, PathPrefix or RegularExpression", m.Path.Type)
			}
		}
		if m.Method != "" && !slices.Contains(httpMethods, m.Method) {
			fe.Add(f+".method", "%q: want an HTTP method in upper case", m.Method)
		}
		validateValueMatches(fe, f+".headers", m.Headers, true)
		validateValueMatches(fe, f+".queryParams", m.Query, false)
	}
	for _, h := range []struct {
		name string
		m    map[string]string
	}{{"requestHeaderModifier.set", r.RequestHeaders.Set}, {"requestHeaderModifier.add", r.RequestHeaders.Add},
		{"responseHeaderModifier.set", r.ResponseHeaders.Set}, {"responseHeaderModifier.add", r.ResponseHeaders.Add}} {
		for name := range h.m {
			if name == "" || strings.ContainsAny(name, " :\t\r\n") {
				fe.Add(field+".filters."+h.name, "%q is not a header name", name)
			}
		}
	}
	if r.BackendTimeout < 0 || r.Timeout > 0 && r.BackendTimeout > r.Timeout {
		fe.Add(field+".timeouts.backendRequest", "%s: want 0 to timeouts.request", r.BackendTimeout)
	}
	if r.Redirect != nil && r.Rewrite != nil {
		fe.Add(field+".filters", "a rule cannot both redirect and rewrite")
	}
	prefixOnly := len(r.Matches) > 0 && !slices.ContainsFunc(r.Matches, func(m RouteMatch) bool { return m.Path == nil || m.Path.Type != PathPrefix })
	checkPath := func(f string, pm PathModifier) {
		switch pm.Type {
		case "":
		case ReplaceFullPath:
			if !strings.HasPrefix(pm.Value, "/") {
				fe.Add(f+".replaceFullPath", "%q: a path starts with /", pm.Value)
			}
		case ReplacePrefixMatch:
			if !strings.HasPrefix(pm.Value, "/") {
				fe.Add(f+".replacePrefixMatch", "%q: a path starts with /", pm.Value)
			}
			if !prefixOnly {
				fe.Add(f+".type", "ReplacePrefixMatch needs every match of the rule to be a PathPrefix")
			}
		default:
			fe.Add(f+".type", "%q: want ReplaceFullPath or ReplacePrefixMatch", pm.Type)
		}
	}
	if rd := r.Redirect; rd != nil {
		f := field + ".filters.requestRedirect"
		if rd.Scheme != "" && rd.Scheme != "http" && rd.Scheme != "https" {
			fe.Add(f+".scheme", "%q: want http or https", rd.Scheme)
		}
		if rd.Port != 0 {
			validatePort(fe, f+".port", rd.Port)
		}
		if !slices.Contains([]uint32{301, 302, 303, 307, 308}, rd.StatusCode) {
			fe.Add(f+".statusCode", "%d: want 301, 302, 303, 307 or 308", rd.StatusCode)
		}
		if rd.Hostname != "" && strings.ContainsAny(rd.Hostname, "/:@ ") {
			fe.Add(f+".hostname", "%q is not a host name", rd.Hostname)
		}
		checkPath(f+".path", rd.Path)
	}
	if rw := r.Rewrite; rw != nil {
		f := field + ".filters.urlRewrite"
		if rw.Hostname != "" && strings.ContainsAny(rw.Hostname, "/:@ ") {
			fe.Add(f+".hostname", "%q is not a host name", rw.Hostname)
		}
		checkPath(f+".path", rw.Path)
	}
	if m := r.Mirror; m != nil {
		f := field + ".filters.requestMirror"
		validateName(fe, f+".backendRef.name", m.Service)
		if m.Port != 0 {
			validatePort(fe, f+".backendRef.port", m.Port)
		}
		if m.Percent < 0 || m.Percent > 100 {
			fe.Add(f+".percent", "%g: want 0 to 100", m.Percent)
		}
	}
}

// validateValueMatches checks header (canonical names) or query matches.
func validateValueMatches(fe *FieldErrors, field string, vs []ValueMatch, headers bool) {
	seen := map[string]bool{}
	for j, v := range vs {
		vf := fmt.Sprintf("%s[%d]", field, j)
		name := v.Name
		if headers {
			name = http.CanonicalHeaderKey(name)
		}
		if v.Name == "" || strings.ContainsAny(v.Name, " :\t\r\n") {
			fe.Add(vf+".name", "%q is not a valid name", v.Name)
		} else if seen[name] {
			fe.Add(vf+".name", "%q is matched twice in one match", v.Name)
		}
		seen[name] = true
		if v.Regex {
			validateRegex(fe, vf+".value", v.Value)
		}
	}
}

// RouteTable is the routing of one Service: every rule of every route
// attached to it, in the order requests try them. It is immutable; a
// ServiceState holds it, so discovery sends it with the service.
type RouteTable struct {
	Rules []TableRule
}

// TableRule is one match of one rule, with where it came from.
type TableRule struct {
	// Route names the route, "Kind namespace/name", for status and logs.
	Route string
	// Port is the parent Service port the rule applies to; 0 is all.
	Port  uint32
	Match RouteMatch
	Rule  RouteRule
}

// Equal reports whether two tables are the same.
func (t *RouteTable) Equal(o *RouteTable) bool {
	if t == nil || o == nil {
		return t == o
	}
	return slices.EqualFunc(t.Rules, o.Rules, func(a, b TableRule) bool {
		return a.Route == b.Route && a.Port == b.Port && a.Match.Equal(b.Match) && a.Rule.Equal(b.Rule)
	})
}

// Backends lists the Services the table sends requests to, each once.
func (t *RouteTable) Backends() []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, r := range t.Rules {
		for _, b := range r.Rule.Backends {
			if !slices.Contains(out, b.Service) {
				out = append(out, b.Service)
			}
		}
		if m := r.Rule.Mirror; m != nil && !slices.Contains(out, m.Service) {
			out = append(out, m.Service)
		}
	}
	return out
}

// resolveRoutes builds the table of service svc from the routes of its
// namespace. Gateway API routes win over SMI TrafficSplits: when both
// address the service, the TrafficSplits are left out (documented; the
// CLI shows it). It returns nil when no route attaches to the service.
func resolveRoutes(svc Ref, routes []*Route) *RouteTable {
	var gamma, smi []TableRule
	for _, r := range routes {
		name := r.Key().String()
		for _, p := range r.Parents {
			if p.Service != svc.Name {
				continue
			}
			for _, rule := range r.Rules {
				matches := rule.Matches
				if len(matches) == 0 {
					matches = []RouteMatch{{}}
				}
				for _, m := range matches {
					tr := TableRule{Route: name, Port: p.Port, Match: m, Rule: rule}
					if r.Kind == KindTrafficSplit {
						smi = append(smi, tr)
					} else {
						gamma = append(gamma, tr)
					}
				}
			}
		}
	}
	rules := gamma
	if len(rules) == 0 {
		rules = smi
		// SMI: what a TrafficSplit's matches do not match goes to the
		// root service itself, as if there were no split.
		if len(rules) > 0 && !slices.ContainsFunc(rules, func(r TableRule) bool { return r.Match.Equal(RouteMatch{}) }) {
			rules = append(rules, TableRule{Route: "Service " + svc.String(), Rule: RouteRule{Backends: []RouteBackend{{Service: svc.Name, Weight: 1}}}})
		}
	}
	if len(rules) == 0 {
		return nil
	}
	slices.SortStableFunc(rules, compareRulePrecedence)
	return &RouteTable{Rules: rules}
}

// compareRulePrecedence orders rules as Gateway API says requests try
// them: an exact path before a prefix, a longer prefix before a shorter,
// then a method, then more header matches, then more query matches, and
// last the route's name (creation time is not known in every mode, so
// weft uses the documented alphabetical tie-break alone).
func compareRulePrecedence(a, b TableRule) int {
	pathRank := func(m RouteMatch) (int, int) {
		switch {
		case m.Path == nil:
			return 2, 1 // no path match is PathPrefix "/"
		case m.Path.Type == PathExact:
			return 0, len(m.Path.Value)
		case m.Path.Type == PathPrefix:
			return 2, len(m.Path.Value)
		default:
			return 1, len(m.Path.Value)
		}
	}
	ak, al := pathRank(a.Match)
	bk, bl := pathRank(b.Match)
	hasMethod := func(m RouteMatch) int {
		if m.Method != "" {
			return 0
		}
		return 1
	}
	return cmp.Or(
		cmp.Compare(ak, bk),
		cmp.Compare(bl, al),
		cmp.Compare(hasMethod(a.Match), hasMethod(b.Match)),
		cmp.Compare(len(b.Match.Headers), len(a.Match.Headers)),
		cmp.Compare(len(b.Match.Query), len(a.Match.Query)),
		cmp.Compare(a.Route, b.Route),
	)
}

// Validate checks every rule of the table, as a proxy does with what it
// receives.
func (t *RouteTable) Validate() error {
	var fe FieldErrors
	for i, r := range t.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		if r.Route == "" {
			fe.Add(field+".route", "must not be empty")
		}
		if r.Port != 0 {
			validatePort(&fe, field+".port", r.Port)
		}
		rule := r.Rule
		rule.Matches = []RouteMatch{r.Match}
		rule.validate(&fe, field)
	}
	return fe.Err()
}
