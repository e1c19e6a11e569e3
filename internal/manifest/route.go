package manifest

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/weftmesh/weft/api/smi"
	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

// Routes: Gateway API's HTTPRoute and GRPCRoute attached to Services
// (GAMMA) and SMI's TrafficSplit all become a model.Route. Gateway API's
// defaults, which Kubernetes' API server fills in, apply here too, so a
// manifest means the same in both modes. What weft does not implement
// (yet) is refused, naming the field, and never ignored: a route that
// silently did less than it says would be worse than none.

// HTTPRouteFromV1 converts and validates a Gateway API HTTPRoute
// (gateway.networking.k8s.io/v1).
func HTTPRouteFromV1(r *gwv1.HTTPRoute) (*model.Route, error) {
	var fe model.FieldErrors
	ns := namespaceOf(r.Namespace)
	out := gatewayRoute(&fe, model.KindHTTPRoute, ns, r.Name, r.Spec.CommonRouteSpec, r.Spec.Hostnames, len(r.Spec.Rules))
	for i, rule := range r.Spec.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		rr := convertRule(&fe, f, ns, rule.Matches, httpRouteMatch, rule.Filters, httpFilter, httpFilterTypes,
			prefixMatches(rule.Matches), rule.BackendRefs,
			func(b gwv1.HTTPBackendRef) (gwv1.BackendRef, []gwv1.HTTPRouteFilter) { return b.BackendRef, b.Filters })
		if t := rule.Timeouts; t != nil {
			if t.Request != nil {
				rr.Timeout = gatewayDuration(&fe, f+".timeouts.request", *t.Request)
			}
			if t.BackendRequest != nil {
				rr.BackendTimeout = gatewayDuration(&fe, f+".timeouts.backendRequest", *t.BackendRequest)
				// Gateway API: a try may not outlast the whole request,
				// unless that has no bound (0s).
				if rr.Timeout > 0 && rr.BackendTimeout > rr.Timeout {
					fe.Add(f+".timeouts.backendRequest", "%s is longer than timeouts.request (%s)", *t.BackendRequest, *t.Request)
				}
			}
		}
		if rule.Retry != nil {
			fe.Add(f+".retry", "not supported: retry the calls to the Service with a RetryPolicy (%s)", weftv1alpha1.GroupVersion)
		}
		if rule.SessionPersistence != nil {
			fe.Add(f+".sessionPersistence", "not supported yet")
		}
		out.Rules = append(out.Rules, rr)
	}
	return checked(fe, out)
}

// GRPCRouteFromV1 converts and validates a Gateway API GRPCRoute
// (gateway.networking.k8s.io/v1). A gRPC method is the HTTP/2 path
// /package.Service/Method, so method matches become path matches; the
// HTTP method is left unmatched, since every gRPC call is a POST.
func GRPCRouteFromV1(r *gwv1.GRPCRoute) (*model.Route, error) {
	var fe model.FieldErrors
	ns := namespaceOf(r.Namespace)
	out := gatewayRoute(&fe, model.KindGRPCRoute, ns, r.Name, r.Spec.CommonRouteSpec, r.Spec.Hostnames, len(r.Spec.Rules))
	for i, rule := range r.Spec.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		rr := convertRule(&fe, f, ns, rule.Matches, grpcRouteMatch, rule.Filters, grpcFilter, grpcFilterTypes, "", rule.BackendRefs,
			func(b gwv1.GRPCBackendRef) (gwv1.BackendRef, []gwv1.GRPCRouteFilter) { return b.BackendRef, b.Filters })
		if rule.SessionPersistence != nil {
			fe.Add(f+".sessionPersistence", "not supported yet")
		}
		out.Rules = append(out.Rules, rr)
	}
	return checked(fe, out)
}

// convertRule converts what HTTPRoute and GRPCRoute rules share: matches,
// filters and backends, each of its own Gateway API type. types are the
// filter types the route kind has; notPrefix says why the rule's matches
// do not allow ReplacePrefixMatch ("" when they do).
func convertRule[M, F, B any](fe *model.FieldErrors, f, ns string,
	matches []M, match func(*model.FieldErrors, string, M) model.RouteMatch,
	filters []F, filter func(F) routeFilter, types []string, notPrefix string,
	backends []B, backend func(B) (gwv1.BackendRef, []F),
) model.RouteRule {
	var rr model.RouteRule
	for j, m := range matches {
		rr.Matches = append(rr.Matches, match(fe, fmt.Sprintf("%s.matches[%d]", f, j), m))
	}
	rr.Matches = matchesAll(rr.Matches)
	fs := make([]routeFilter, len(filters))
	for j, fl := range filters {
		fs[j] = filter(fl)
	}
	routeFilters(fe, f+".filters", ns, fs, types, notPrefix, &rr)
	if rr.Redirect != nil && len(backends) > 0 {
		fe.Add(f+".backendRefs", "must be empty in a rule with a RequestRedirect filter, which answers the request itself")
	}
	for j, b := range backends {
		bf := fmt.Sprintf("%s.backendRefs[%d]", f, j)
		ref, bfs := backend(b)
		for k, fl := range bfs {
			refuseBackendFilter(fe, fmt.Sprintf("%s.filters[%d]", bf, k), filter(fl).typ)
		}
		rr.Backends = append(rr.Backends, routeBackend(fe, bf, ns, ref))
	}
	return rr
}

// TrafficSplitFromSMI converts and validates an SMI TrafficSplit of
// split.smi-spec.io v1alpha4, v1alpha3 or v1alpha2: one rule, on every
// port of the root service, whose backends take the port the request came
// for. Its matches name HTTPRouteGroups, which the model resolves when it
// admits the split: requests they match are split, the others go to the
// root service.
func TrafficSplitFromSMI(t *smi.TrafficSplit) (*model.Route, error) {
	var fe model.FieldErrors
	out := &model.Route{
		Kind:    model.KindTrafficSplit,
		Ref:     model.Ref{Namespace: namespaceOf(t.Namespace), Name: t.Name},
		Parents: []model.RouteParent{{Service: t.Spec.Service}},
	}
	var rule model.RouteRule
	if len(t.Spec.Matches) > 0 && t.APIVersion == smi.SplitV1alpha2 {
		fe.Add("spec.matches", "a %s TrafficSplit has no matches; use %s", smi.SplitV1alpha2, smi.SplitV1alpha4)
	}
	for i, m := range t.Spec.Matches {
		f := fmt.Sprintf("spec.matches[%d]", i)
		if m.Kind != model.KindHTTPRouteGroup {
			fe.Add(f+".kind", "%q: want HTTPRouteGroup", m.Kind)
		}
		if m.APIGroup != nil && *m.APIGroup != smi.SpecsGroup {
			fe.Add(f+".apiGroup", "%q: want %s", *m.APIGroup, smi.SpecsGroup)
		}
		rule.Groups = append(rule.Groups, m.Name)
	}
	for i, b := range t.Spec.Backends {
		f := fmt.Sprintf("spec.backends[%d]", i)
		rb := model.RouteBackend{Service: b.Service}
		switch w := b.Weight; {
		case w == nil:
			fe.Add(f+".weight", "must be set")
		case *w < 0:
			fe.Add(f+".weight", "must not be negative, got %d", *w)
		default:
			// The model bounds weights far below; saturating keeps a huge
			// one an error there rather than wrapping around.
			rb.Weight = uint32(min(*w, math.MaxUint32))
		}
		rule.Backends = append(rule.Backends, rb)
	}
	out.Rules = []model.RouteRule{rule}
	return checked(fe, out)
}

// coreGroup reports whether a reference's group is Kubernetes' core group,
// where Services are.
func coreGroup(g string) bool { return g == "" || g == "core" }

// routeParents reads parentRefs: Services of the route's own namespace
// (GAMMA "producer" routes), each on one port or all of them.
func routeParents(fe *model.FieldErrors, ns string, spec gwv1.CommonRouteSpec) []model.RouteParent {
	var out []model.RouteParent
	for i, p := range spec.ParentRefs {
		f := fmt.Sprintf("spec.parentRefs[%d]", i)
		kind := "Gateway" // Gateway API's default
		if p.Kind != nil && *p.Kind != "" {
			kind = string(*p.Kind)
		}
		switch {
		case kind != KindService:
			fe.Add(f+".kind", "weft supports Service parents (GAMMA); %s is not supported", kind)
		case p.Group == nil:
			fe.Add(f+".group", `must be "" for a Service: Gateway API reads an omitted group as %s`, gwv1.GroupName)
		case !coreGroup(string(*p.Group)):
			fe.Add(f+".group", `%q: a Service parent is in the core group, ""`, *p.Group)
		}
		if p.Namespace != nil && string(*p.Namespace) != ns {
			fe.Add(f+".namespace", "%q: weft attaches a route to Services of its own namespace (%s); consumer routes are not supported yet", *p.Namespace, ns)
		}
		if p.SectionName != nil && *p.SectionName != "" {
			fe.Add(f+".sectionName", "not supported yet: give the Service port as port")
		}
		rp := model.RouteParent{Service: string(p.Name)}
		if p.Port != nil {
			rp.Port = portNumber(fe, f+".port", *p.Port)
		}
		if slices.Contains(out, rp) {
			fe.Add(f, "names Service %s, port %d, a second time", rp.Service, rp.Port)
		}
		out = append(out, rp)
	}
	if s := spec.UseDefaultGateways; s != "" && s != gwv1.GatewayDefaultScopeNone {
		fe.Add("spec.useDefaultGateways", "%q: weft supports Service parents (GAMMA); Gateways are not supported", s)
	}
	return out
}

// refuseHostnames: GAMMA says meshes should not infer anything from a
// route's hostnames, and ignoring what a user wrote would mislead.
// gatewayRoute converts what HTTPRoute and GRPCRoute begin with: the
// route's name and parents, the hostnames weft refuses, and that there is
// a rule; the caller adds the rules.
func gatewayRoute(fe *model.FieldErrors, kind, ns, name string, spec gwv1.CommonRouteSpec, hostnames []gwv1.Hostname, rules int) *model.Route {
	out := &model.Route{Kind: kind, Ref: model.Ref{Namespace: ns, Name: name}, Parents: routeParents(fe, ns, spec)}
	refuseHostnames(fe, hostnames)
	if rules == 0 {
		fe.Add("spec.rules", "name at least one rule")
	}
	return out
}

func refuseHostnames(fe *model.FieldErrors, hostnames []gwv1.Hostname) {
	if len(hostnames) > 0 {
		fe.Add("spec.hostnames", "not used by routes attached to a Service (GAMMA): match the Host header instead")
	}
}

// routeBackend reads a backendRef: a Service of the route's namespace.
func routeBackend(fe *model.FieldErrors, field, ns string, b gwv1.BackendRef) model.RouteBackend {
	out := model.RouteBackend{Service: string(b.Name), Weight: 1}
	kind, group := KindService, "" // Gateway API's defaults for backends
	if b.Kind != nil && *b.Kind != "" {
		kind = string(*b.Kind)
	}
	if b.Group != nil {
		group = string(*b.Group)
	}
	switch {
	case kind != KindService:
		fe.Add(field+".kind", "%q: weft routes to Services only", kind)
	case !coreGroup(group):
		fe.Add(field+".group", `%q: a Service backend is in the core group, ""`, group)
	}
	if b.Namespace != nil && string(*b.Namespace) != ns {
		fe.Add(field+".namespace", "%q: backends in other namespaces are not supported yet; name a Service of the route's namespace (%s)", *b.Namespace, ns)
	}
	if b.Port != nil {
		out.Port = portNumber(fe, field+".port", *b.Port)
	}
	if w := b.Weight; w != nil {
		if *w < 0 {
			fe.Add(field+".weight", "must not be negative, got %d", *w)
		} else {
			out.Weight = uint32(*w)
		}
	}
	return out
}

// routeFilter is what weft reads of an HTTPRoute's or a GRPCRoute's
// filter: its type and the settings it has, by their field names, since
// only a filter of their own type may have them.
type routeFilter struct {
	typ             string
	requestHeaders  *gwv1.HTTPHeaderFilter
	responseHeaders *gwv1.HTTPHeaderFilter
	redirect        *gwv1.HTTPRequestRedirectFilter
	rewrite         *gwv1.HTTPURLRewriteFilter
	mirror          *gwv1.HTTPRequestMirrorFilter
	set             []string
}

// Filter types and the field of each one's settings.
var filterFields = map[string]string{
	string(gwv1.HTTPRouteFilterRequestHeaderModifier):  "requestHeaderModifier",
	string(gwv1.HTTPRouteFilterResponseHeaderModifier): "responseHeaderModifier",
	string(gwv1.HTTPRouteFilterRequestRedirect):        "requestRedirect",
	string(gwv1.HTTPRouteFilterURLRewrite):             "urlRewrite",
	string(gwv1.HTTPRouteFilterRequestMirror):          "requestMirror",
}

// The filter types weft converts for each route kind: GRPCRoute has no
// redirect or rewrite.
var (
	httpFilterTypes = []string{
		string(gwv1.HTTPRouteFilterRequestHeaderModifier), string(gwv1.HTTPRouteFilterResponseHeaderModifier),
		string(gwv1.HTTPRouteFilterRequestRedirect), string(gwv1.HTTPRouteFilterURLRewrite), string(gwv1.HTTPRouteFilterRequestMirror),
	}
	grpcFilterTypes = []string{
		string(gwv1.GRPCRouteFilterRequestHeaderModifier), string(gwv1.GRPCRouteFilterResponseHeaderModifier),
		string(gwv1.GRPCRouteFilterRequestMirror),
	}
)

func httpFilter(f gwv1.HTTPRouteFilter) routeFilter {
	return routeFilter{
		typ: string(f.Type), requestHeaders: f.RequestHeaderModifier, responseHeaders: f.ResponseHeaderModifier,
		redirect: f.RequestRedirect, rewrite: f.URLRewrite, mirror: f.RequestMirror,
		set: setFields(map[string]bool{
			"requestHeaderModifier":  f.RequestHeaderModifier != nil,
			"responseHeaderModifier": f.ResponseHeaderModifier != nil,
			"requestMirror":          f.RequestMirror != nil,
			"requestRedirect":        f.RequestRedirect != nil,
			"urlRewrite":             f.URLRewrite != nil,
			"cors":                   f.CORS != nil,
			"externalAuth":           f.ExternalAuth != nil,
			"extensionRef":           f.ExtensionRef != nil,
		}),
	}
}

func grpcFilter(f gwv1.GRPCRouteFilter) routeFilter {
	return routeFilter{
		typ: string(f.Type), requestHeaders: f.RequestHeaderModifier, responseHeaders: f.ResponseHeaderModifier,
		mirror: f.RequestMirror,
		set: setFields(map[string]bool{
			"requestHeaderModifier":  f.RequestHeaderModifier != nil,
			"responseHeaderModifier": f.ResponseHeaderModifier != nil,
			"requestMirror":          f.RequestMirror != nil,
			"extensionRef":           f.ExtensionRef != nil,
		}),
	}
}

func setFields(set map[string]bool) []string {
	var out []string
	for name, ok := range set {
		if ok {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// routeFilters reads a rule's filters into rr: at most one of each type
// of types (weft mirrors to one Service per rule), and not both a
// RequestRedirect and a URLRewrite. Every other type is refused.
func routeFilters(fe *model.FieldErrors, field, ns string, filters []routeFilter, types []string, notPrefix string, rr *model.RouteRule) {
	seen := map[string]int{} // type: the index of the filter of it
	for i, f := range filters {
		ff := fmt.Sprintf("%s[%d]", field, i)
		switch {
		case f.typ == "":
			fe.Add(ff+".type", "must be set")
			continue
		case !slices.Contains(types, f.typ):
			fe.Add(ff+".type", "%q: not supported yet (weft supports %s)", f.typ, strings.Join(types, ", "))
			continue
		}
		name := filterFields[f.typ]
		for _, o := range f.set {
			if o != name {
				fe.Add(ff+"."+o, "set in a filter of type %s", f.typ)
			}
		}
		if !slices.Contains(f.set, name) {
			fe.Add(ff+"."+name, "must be set for type %s", f.typ)
			continue
		}
		if first, ok := seen[f.typ]; ok {
			if f.typ == string(gwv1.HTTPRouteFilterRequestMirror) {
				fe.Add(ff, "a rule has at most one RequestMirror filter in weft (filters[%d] is one)", first)
			} else {
				fe.Add(ff, "a rule has at most one %s filter", f.typ)
			}
			continue
		}
		seen[f.typ] = i
		sf := ff + "." + name
		switch gwv1.HTTPRouteFilterType(f.typ) {
		case gwv1.HTTPRouteFilterRequestHeaderModifier:
			rr.RequestHeaders = headerModifier(fe, sf, f.requestHeaders)
		case gwv1.HTTPRouteFilterResponseHeaderModifier:
			rr.ResponseHeaders = headerModifier(fe, sf, f.responseHeaders)
		case gwv1.HTTPRouteFilterRequestRedirect:
			rr.Redirect = redirect(fe, sf, f.redirect, notPrefix)
		case gwv1.HTTPRouteFilterURLRewrite:
			rr.Rewrite = rewrite(fe, sf, f.rewrite, notPrefix)
		case gwv1.HTTPRouteFilterRequestMirror:
			rr.Mirror = mirror(fe, sf, ns, f.mirror)
		}
	}
	redirectAt, isRedirect := seen[string(gwv1.HTTPRouteFilterRequestRedirect)]
	rewriteAt, isRewrite := seen[string(gwv1.HTTPRouteFilterURLRewrite)]
	if isRedirect && isRewrite {
		fe.Add(fmt.Sprintf("%s[%d]", field, max(redirectAt, rewriteAt)),
			"a rule may have a RequestRedirect or a URLRewrite filter, not both (filters[%d] is the other)", min(redirectAt, rewriteAt))
	}
}

// redirectCodes are the status codes Gateway API's RequestRedirect allows.
var redirectCodes = []int{301, 302, 303, 307, 308}

// redirect reads a RequestRedirect; the status code is 302 by default.
func redirect(fe *model.FieldErrors, field string, r *gwv1.HTTPRequestRedirectFilter, notPrefix string) *model.Redirect {
	out := &model.Redirect{StatusCode: 302}
	if r.Scheme != nil {
		out.Scheme = *r.Scheme
		if out.Scheme != "http" && out.Scheme != "https" {
			fe.Add(field+".scheme", "%q: want http or https", out.Scheme)
		}
	}
	if r.Hostname != nil {
		out.Hostname = preciseHostname(fe, field+".hostname", string(*r.Hostname))
	}
	if r.Port != nil {
		out.Port = portNumber(fe, field+".port", *r.Port)
	}
	if r.Path != nil {
		out.Path = pathModifier(fe, field+".path", r.Path, notPrefix)
	}
	if c := r.StatusCode; c != nil {
		if slices.Contains(redirectCodes, *c) {
			out.StatusCode = uint32(*c)
		} else {
			fe.Add(field+".statusCode", "%d: want 301, 302, 303, 307 or 308", *c)
		}
	}
	return out
}

// rewrite reads a URLRewrite.
func rewrite(fe *model.FieldErrors, field string, r *gwv1.HTTPURLRewriteFilter, notPrefix string) *model.Rewrite {
	out := &model.Rewrite{}
	if r.Hostname != nil {
		out.Hostname = preciseHostname(fe, field+".hostname", string(*r.Hostname))
	}
	if r.Path != nil {
		out.Path = pathModifier(fe, field+".path", r.Path, notPrefix)
	}
	return out
}

// maxModifiedPath is Gateway API's bound on a path modifier's value.
const maxModifiedPath = 1024

// pathModifier reads a redirect's or rewrite's path. ReplacePrefixMatch
// replaces what a PathPrefix match matched, so every match of the rule
// must be one (notPrefix says why not). An empty prefix replacement is
// the same as /, which the model takes.
func pathModifier(fe *model.FieldErrors, field string, p *gwv1.HTTPPathModifier, notPrefix string) model.PathModifier {
	switch p.Type {
	case gwv1.FullPathHTTPPathModifier:
		if p.ReplacePrefixMatch != nil {
			fe.Add(field+".replacePrefixMatch", "set in a path modifier of type ReplaceFullPath")
		}
		if p.ReplaceFullPath == nil {
			fe.Add(field+".replaceFullPath", "must be set for type ReplaceFullPath")
			return model.PathModifier{}
		}
		v := *p.ReplaceFullPath
		if !modifiedPath(fe, field+".replaceFullPath", v) {
			return model.PathModifier{}
		}
		return model.PathModifier{Type: model.ReplaceFullPath, Value: v}
	case gwv1.PrefixMatchHTTPPathModifier:
		if p.ReplaceFullPath != nil {
			fe.Add(field+".replaceFullPath", "set in a path modifier of type ReplacePrefixMatch")
		}
		if notPrefix != "" {
			fe.Add(field+".type", "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match other than /, but %s", notPrefix)
		}
		if p.ReplacePrefixMatch == nil {
			fe.Add(field+".replacePrefixMatch", "must be set for type ReplacePrefixMatch")
			return model.PathModifier{}
		}
		v := *p.ReplacePrefixMatch
		if v == "" {
			v = "/"
		}
		if !modifiedPath(fe, field+".replacePrefixMatch", v) {
			return model.PathModifier{}
		}
		return model.PathModifier{Type: model.ReplacePrefixMatch, Value: v}
	case "":
		fe.Add(field+".type", "must be set")
	default:
		fe.Add(field+".type", "%q: want ReplaceFullPath or ReplacePrefixMatch", p.Type)
	}
	return model.PathModifier{}
}

func modifiedPath(fe *model.FieldErrors, field, v string) bool {
	if len(v) > maxModifiedPath {
		fe.Add(field, "longer than %d bytes", maxModifiedPath)
		return false
	}
	return checkPath(fe, field, v)
}

// prefixMatches says why a rule's matches do not allow ReplacePrefixMatch,
// or "" when every one is a PathPrefix match other than /. Gateway API's
// default match is PathPrefix /, which matches every request: weft keeps
// no prefix of it (the model's rule without matches) to replace.
func prefixMatches(ms []gwv1.HTTPRouteMatch) string {
	if len(ms) == 0 {
		return "the rule has no matches (PathPrefix / by default)"
	}
	for j, m := range ms {
		if m.Path == nil {
			return fmt.Sprintf("matches[%d] has no path match (PathPrefix / by default)", j)
		}
		if m.Path.Type != nil && *m.Path.Type != gwv1.PathMatchPathPrefix {
			return fmt.Sprintf("matches[%d].path is of type %s", j, *m.Path.Type)
		}
		if m.Path.Value == nil || strings.TrimSuffix(*m.Path.Value, "/") == "" {
			return fmt.Sprintf("matches[%d].path is PathPrefix /", j)
		}
	}
	return ""
}

// preciseHostname is Gateway API's PreciseHostname: a DNS name in lower
// case, without wildcard.
var preciseHostnameSyntax = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func preciseHostname(fe *model.FieldErrors, field, h string) string {
	if len(h) > 253 || !preciseHostnameSyntax.MatchString(h) {
		fe.Add(field, "%q: want a host name in lower case, such as catalog.demo.example", h)
		return ""
	}
	return h
}

// mirror reads a RequestMirror: a port of a Service of the route's
// namespace, and the share of requests mirrored, as a percent or a
// fraction; all of them by default.
func mirror(fe *model.FieldErrors, field, ns string, m *gwv1.HTTPRequestMirrorFilter) *model.Mirror {
	bf := field + ".backendRef"
	b := routeBackend(fe, bf, ns, gwv1.BackendRef{BackendObjectReference: m.BackendRef})
	if m.BackendRef.Port == nil {
		fe.Add(bf+".port", "must be set: the port of the Service mirrored requests go to")
	}
	out := &model.Mirror{Service: b.Service, Port: b.Port, Percent: 100}
	switch {
	case m.Percent != nil && m.Fraction != nil:
		fe.Add(field, "set percent or fraction, not both")
	case m.Percent != nil:
		if p := *m.Percent; p < 0 || p > 100 {
			fe.Add(field+".percent", "%d: want 0 to 100", p)
		} else {
			out.Percent = float64(p)
		}
	case m.Fraction != nil:
		num, den := m.Fraction.Numerator, int32(100)
		if m.Fraction.Denominator != nil {
			den = *m.Fraction.Denominator
		}
		switch {
		case den < 1:
			fe.Add(field+".fraction.denominator", "%d: must be at least 1", den)
		case num < 0 || num > den:
			fe.Add(field+".fraction.numerator", "%d: want 0 to the denominator, %d", num, den)
		default:
			out.Percent = 100 * float64(num) / float64(den)
		}
	}
	return out
}

func refuseBackendFilter(fe *model.FieldErrors, field, typ string) {
	fe.Add(field, "%s: filters on a backendRef are not supported yet", typ)
}

// headerModifier reads a RequestHeaderModifier. Header names are case
// insensitive: one named twice in a list, in any case, is an error.
func headerModifier(fe *model.FieldErrors, field string, h *gwv1.HTTPHeaderFilter) model.HeaderModifier {
	headers := func(list string, hs []gwv1.HTTPHeader) map[string]string {
		var out map[string]string
		seen := map[string]bool{}
		for i, hd := range hs {
			f := fmt.Sprintf("%s.%s[%d]", field, list, i)
			name := string(hd.Name)
			if !checkHeaderName(fe, f+".name", name, seen) {
				continue
			}
			if !httpguts.ValidHeaderFieldValue(hd.Value) {
				fe.Add(f+".value", "%q is not a valid header value", hd.Value)
			}
			if out == nil {
				out = map[string]string{}
			}
			out[name] = hd.Value
		}
		return out
	}
	out := model.HeaderModifier{Set: headers("set", h.Set), Add: headers("add", h.Add)}
	seen := map[string]bool{}
	for i, name := range h.Remove {
		if checkHeaderName(fe, fmt.Sprintf("%s.remove[%d]", field, i), name, seen) {
			out.Remove = append(out.Remove, name)
		}
	}
	return out
}

func checkHeaderName(fe *model.FieldErrors, field, name string, seen map[string]bool) bool {
	switch key := strings.ToLower(name); {
	case !httpguts.ValidHeaderFieldName(name):
		fe.Add(field, "%q is not a header name", name)
	case seen[key]:
		fe.Add(field, "header %q is given twice", name)
	default:
		seen[key] = true
		return true
	}
	return false
}

// matchesAll drops a rule's matches when every one matches any request,
// as Gateway API's default match (PathPrefix /) does: the model's rule
// without matches.
func matchesAll(ms []model.RouteMatch) []model.RouteMatch {
	for _, m := range ms {
		if !m.Equal(model.RouteMatch{}) {
			return ms
		}
	}
	return nil
}

// gatewayMethods are the methods Gateway API's HTTPRouteMatch allows.
var gatewayMethods = []string{"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}

func httpRouteMatch(fe *model.FieldErrors, field string, m gwv1.HTTPRouteMatch) model.RouteMatch {
	var out model.RouteMatch
	if m.Path != nil {
		out.Path = httpPathMatch(fe, field+".path", m.Path)
	}
	if m.Method != nil {
		out.Method = string(*m.Method)
		if !slices.Contains(gatewayMethods, out.Method) {
			fe.Add(field+".method", "%q: want an HTTP method in upper case", out.Method)
		}
	}
	for i, h := range m.Headers {
		out.Headers = append(out.Headers, valueMatch(fe, fmt.Sprintf("%s.headers[%d]", field, i), string(h.Name), h.Value, h.Type))
	}
	for i, q := range m.QueryParams {
		out.Query = append(out.Query, valueMatch(fe, fmt.Sprintf("%s.queryParams[%d]", field, i), string(q.Name), q.Value, q.Type))
	}
	return out
}

// valueMatch reads a header or query parameter match; the type defaults
// to Exact.
func valueMatch[T ~string](fe *model.FieldErrors, field, name, value string, typ *T) model.ValueMatch {
	out := model.ValueMatch{Name: name, Value: value}
	if typ != nil {
		switch string(*typ) {
		case "Exact":
		case "RegularExpression":
			out.Regex = true
		default:
			fe.Add(field+".type", "%q: want Exact or RegularExpression", string(*typ))
		}
	}
	return out
}

var pathTypes = map[gwv1.PathMatchType]model.PathMatchType{
	gwv1.PathMatchExact:             model.PathExact,
	gwv1.PathMatchPathPrefix:        model.PathPrefix,
	gwv1.PathMatchRegularExpression: model.PathRegex,
}

// httpPathMatch reads a path match, PathPrefix / by default. A prefix of
// / matches every path, as no path match does, so it becomes none; a
// prefix's trailing slash is dropped, since Gateway API ignores it.
func httpPathMatch(fe *model.FieldErrors, field string, p *gwv1.HTTPPathMatch) *model.PathMatch {
	typ, value := gwv1.PathMatchPathPrefix, "/"
	if p.Type != nil {
		typ = *p.Type
	}
	if p.Value != nil {
		value = *p.Value
	}
	t, ok := pathTypes[typ]
	if !ok {
		fe.Add(field+".type", "%q: want Exact, PathPrefix or RegularExpression", typ)
		return nil
	}
	if t != model.PathRegex && !checkPath(fe, field+".value", value) {
		return nil
	}
	if t == model.PathPrefix {
		if value == "/" {
			return nil
		}
		value = strings.TrimSuffix(value, "/")
	}
	return &model.PathMatch{Type: t, Value: value}
}

// pathChars are the characters Gateway API allows in an Exact or
// PathPrefix path.
var pathChars = regexp.MustCompile(`^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9a-fA-F]{2})+$`)

// checkPath applies Gateway API's rules for Exact and PathPrefix values:
// absolute, normalized, no encoded slash.
func checkPath(fe *model.FieldErrors, field, p string) bool {
	switch {
	case !strings.HasPrefix(p, "/"):
		fe.Add(field, "%q: a path starts with /", p)
	case !pathChars.MatchString(p):
		fe.Add(field, "%q: a path has URL path characters and %%XX escapes only", p)
	case strings.Contains(p, "//"), strings.Contains(p, "/./"), strings.Contains(p, "/../"),
		strings.HasSuffix(p, "/."), strings.HasSuffix(p, "/.."), strings.Contains(strings.ToLower(p), "%2f"):
		fe.Add(field, "%q: a path must be normalized (no //, /./, /../ or %%2F)", p)
	default:
		return true
	}
	return false
}

func grpcRouteMatch(fe *model.FieldErrors, field string, m gwv1.GRPCRouteMatch) model.RouteMatch {
	var out model.RouteMatch
	if m.Method != nil {
		out.Path = grpcMethodPath(fe, field+".method", m.Method)
	}
	for i, h := range m.Headers {
		out.Headers = append(out.Headers, valueMatch(fe, fmt.Sprintf("%s.headers[%d]", field, i), string(h.Name), h.Value, h.Type))
	}
	return out
}

// Names an Exact method match may have, as Gateway API validates them.
var (
	grpcServiceName = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

// grpcMethodPath turns a method match into a match of the path
// /service/method: exact for both parts, a prefix for a service alone, and
// a regular expression otherwise, each regular expression part in a group
// of its own so that an alternation stays within its part.
func grpcMethodPath(fe *model.FieldErrors, field string, m *gwv1.GRPCMethodMatch) *model.PathMatch {
	typ := gwv1.GRPCMethodMatchExact
	if m.Type != nil {
		typ = *m.Type
	}
	var service, method string
	if m.Service != nil {
		service = *m.Service
	}
	if m.Method != nil {
		method = *m.Method
	}
	if service == "" && method == "" {
		fe.Add(field, "set service, method or both")
		return nil
	}
	switch typ {
	case gwv1.GRPCMethodMatchExact:
		ok := true
		if service != "" && !grpcServiceName.MatchString(service) {
			fe.Add(field+".service", "%q is not a gRPC service name (package.Service)", service)
			ok = false
		}
		if method != "" && !grpcMethodName.MatchString(method) {
			fe.Add(field+".method", "%q is not a gRPC method name", method)
			ok = false
		}
		switch {
		case !ok:
			return nil
		case method == "":
			return &model.PathMatch{Type: model.PathPrefix, Value: "/" + service + "/"}
		case service == "":
			return &model.PathMatch{Type: model.PathRegex, Value: "/[^/]+/" + regexp.QuoteMeta(method)}
		}
		return &model.PathMatch{Type: model.PathExact, Value: "/" + service + "/" + method}
	case gwv1.GRPCMethodMatchRegularExpression:
		part := func(name, re string) string {
			if re == "" {
				return "[^/]+"
			}
			if _, err := regexp.Compile(re); err != nil {
				fe.Add(field+"."+name, "%q: %v", re, err)
			}
			return "(?:" + re + ")"
		}
		return &model.PathMatch{Type: model.PathRegex, Value: "/" + part("service", service) + "/" + part("method", method)}
	}
	fe.Add(field+".type", "%q: want Exact or RegularExpression", typ)
	return nil
}

// gatewayDuration is GEP-2257's syntax: up to four numbers of up to five
// digits, each with a unit of h, m, s or ms.
var gatewayDurationSyntax = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)

// gatewayDuration reads a Gateway API duration; 0s is none.
func gatewayDuration(fe *model.FieldErrors, field string, d gwv1.Duration) time.Duration {
	s := string(d)
	v, err := time.ParseDuration(s)
	if !gatewayDurationSyntax.MatchString(s) || err != nil {
		fe.Add(field, "%q: want a Gateway API duration such as 10s, 500ms or 1m30s", s)
		return 0
	}
	return v
}
