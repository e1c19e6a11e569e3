package controlplane

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source/files"
	"github.com/weftmesh/weft/internal/source/kube"
)

// The admin API's JSON documents, shared by the server and the CLI.

// Status is GET /api/v1/status.
type Status struct {
	Version   uint64        `json:"version"`
	Services  int           `json:"services"`
	Workloads int           `json:"workloads"`
	Manifests *files.Status `json:"manifests,omitempty"`
	// Kubernetes is what Kubernetes mode's source last saw, and whether
	// this replica leads.
	Kubernetes *KubernetesStatus `json:"kubernetes,omitempty"`
	Proxies    []Proxy           `json:"proxies"`
}

// KubernetesStatus is Kubernetes mode's part of Status.
type KubernetesStatus struct {
	kube.Status
	Leadership Leadership `json:"leadership"`
}

// Proxy is a proxy connected to the discovery server.
type Proxy struct {
	Workload      string    `json:"workload"`
	Subscriptions []string  `json:"subscriptions"`
	Version       uint64    `json:"version"`
	Since         time.Time `json:"since"`
}

// Service is one entry of GET /api/v1/services.
type Service struct {
	Name      string     `json:"name"`
	Ports     []Port     `json:"ports"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Port is a service port.
type Port struct {
	Name     string `json:"name,omitempty"`
	Port     uint32 `json:"port"`
	Protocol string `json:"protocol,omitempty"`
}

// Endpoint is a workload serving a service.
type Endpoint struct {
	Workload string `json:"workload"`
	Address  string `json:"address"`
	Identity string `json:"identity"`
}

// Workload is one entry of GET /api/v1/workloads.
type Workload struct {
	Name           string            `json:"name"`
	Labels         map[string]string `json:"labels,omitempty"`
	ServiceAccount string            `json:"serviceAccount"`
	Address        string            `json:"address"`
	InboundPort    uint32            `json:"inboundPort"`
	AdminPort      uint32            `json:"adminPort,omitempty"`
	Ports          []Port            `json:"ports,omitempty"`
	Outbound       []Outbound        `json:"outbound,omitempty"`
	Source         string            `json:"source"`
}

// Outbound is a service a workload calls at a local port.
type Outbound struct {
	Service   string `json:"service"`
	Port      uint32 `json:"port"`
	LocalPort uint32 `json:"localPort"`
}

// Identity is GET /api/v1/identity.
type Identity struct {
	TrustDomain string `json:"trustDomain"`
	// RotationPhase is "", "prepared" or "activated".
	RotationPhase string   `json:"rotationPhase,omitempty"`
	Anchors       []Anchor `json:"anchors"`
	// Intermediate is the issuing CA certificate in use.
	Intermediate Anchor `json:"intermediate"`
	// Leaves are the newest certificate of each identity issued since the
	// control plane started.
	Leaves []Leaf `json:"leaves"`
}

// Leaf is the newest workload certificate of one identity.
type Leaf struct {
	SPIFFEID string    `json:"spiffeID"`
	Issued   time.Time `json:"issued"`
	NotAfter time.Time `json:"notAfter"`
	// Proxies counts the connected proxies of workloads with this identity:
	// a certificate nobody renews while proxies use it is a problem.
	Proxies int `json:"proxies"`
}

// Anchor is a trust anchor (root) or the intermediate.
type Anchor struct {
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"notAfter"`
	Fingerprint string    `json:"fingerprint"`
	Active      bool      `json:"active,omitempty"`
	LiveLeaves  int       `json:"liveLeaves"`
}

// TokenRequest is POST /api/v1/identity/tokens.
type TokenRequest struct {
	Namespace      string `json:"namespace"`
	ServiceAccount string `json:"serviceAccount"`
	// TTL as a Go duration ("1h"); "" means an hour.
	TTL string `json:"ttl,omitempty"`
}

// TokenResponse carries a minted join token.
type TokenResponse struct {
	Token   string    `json:"token"`
	ID      string    `json:"id"`
	Expires time.Time `json:"expires"`
}

// RevokeRequest is POST /api/v1/identity/tokens/revoke.
type RevokeRequest struct {
	// ID is the token's ID, as weft identity token printed it.
	ID string `json:"id"`
}

// RotateRequest is POST /api/v1/identity/rotate.
type RotateRequest struct {
	// Step is prepare, activate or finish.
	Step  string `json:"step"`
	Force bool   `json:"force,omitempty"`
}

// Policy is one entry of GET /api/v1/policies.
type Policy struct {
	// Kind is AuthorizationPolicy, TrafficTarget, HTTPRouteGroup, TCPRoute,
	// RetryPolicy, FaultPolicy, CircuitBreakerPolicy or RateLimitPolicy.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Summary says in one line what the policy selects and allows, or for
	// a traffic policy what it does to the calls to its service.
	Summary string `json:"summary"`
	// Status says whether a traffic policy (RetryPolicy, FaultPolicy,
	// CircuitBreakerPolicy) is in force on its service, or a
	// RateLimitPolicy on the service's workloads; other kinds have none.
	Status *PolicyStatus `json:"status,omitempty"`
}

// PolicyStatus is whether a traffic policy is in force.
type PolicyStatus struct {
	InForce bool `json:"inForce"`
	// Reason says why the policy is not in force.
	Reason string `json:"reason,omitempty"`
}

// Policies lists every policy object but routes, which Routes lists, by
// kind, namespace and name.
func (cp *ControlPlane) Policies() []Policy { return policies(cp.store.Snapshot()) }

// policies reads the status of each traffic policy from the traffic
// policies the model resolved for its service, and of each rate limit
// from the authorization it resolved for each workload, so it says what
// proxies are told.
func policies(snap *model.Snapshot) []Policy {
	out := []Policy{}
	for _, p := range snap.Policies() {
		if _, ok := p.(*model.Route); ok {
			continue
		}
		k := p.Key()
		out = append(out, Policy{Kind: k.Kind, Namespace: k.Ref.Namespace, Name: k.Ref.Name, Summary: policySummary(p), Status: trafficStatus(snap, p)})
	}
	return out
}

// trafficStatus says whether a traffic policy is the one of its kind in
// force on its service: the first by name is, and the others are not.
// A RateLimitPolicy is in force per workload (rateLimitStatus). It is nil
// for the other kinds.
func trafficStatus(snap *model.Snapshot, p model.Policy) *PolicyStatus {
	var service string
	var inForce func(*model.TrafficPolicy) model.Policy
	switch p := p.(type) {
	case *model.RetryPolicy:
		service = p.Service
		inForce = func(t *model.TrafficPolicy) model.Policy { return orNil(t.Retry) }
	case *model.FaultPolicy:
		service = p.Service
		inForce = func(t *model.TrafficPolicy) model.Policy { return orNil(t.Fault) }
	case *model.CircuitBreakerPolicy:
		service = p.Service
		inForce = func(t *model.TrafficPolicy) model.Policy { return orNil(t.Breaker) }
	case *model.RateLimitPolicy:
		return rateLimitStatus(snap, p)
	default:
		return nil
	}
	k := p.Key()
	ref := model.Ref{Namespace: k.Ref.Namespace, Name: service}
	svc, ok := snap.Service(ref)
	if !ok {
		return &PolicyStatus{Reason: fmt.Sprintf("service %s does not exist", ref)}
	}
	var winner model.Policy
	if svc.Traffic != nil {
		winner = inForce(svc.Traffic)
	}
	switch {
	case winner == nil:
		return &PolicyStatus{Reason: fmt.Sprintf("not in force on service %s", ref)}
	case winner.Key() == k:
		return &PolicyStatus{InForce: true}
	}
	return &PolicyStatus{Reason: fmt.Sprintf("%s already applies to service %s (the first by name is in force)", winner.Key(), ref)}
}

// rateLimitStatus says whether a rate limit policy is in force on at
// least one workload its service selects. The model resolves rate limits
// per workload, the first policy by name that selects a workload winning,
// so the policies in force there may attach to other services selecting
// the same workloads.
func rateLimitStatus(snap *model.Snapshot, p *model.RateLimitPolicy) *PolicyStatus {
	ref := model.Ref{Namespace: p.Ref.Namespace, Name: p.Service}
	svc, ok := snap.Service(ref)
	if !ok {
		return &PolicyStatus{Reason: fmt.Sprintf("service %s does not exist", ref)}
	}
	name := p.Key().String()
	selected, winners := false, []string{}
	for _, w := range snap.Workloads() {
		if w.Ref.Namespace != ref.Namespace || !svc.Service.Selects(w.Labels) {
			continue
		}
		selected = true
		a := snap.Authz(w.Ref)
		if a == nil || a.RateLimit == nil {
			continue
		}
		if a.RateLimit.Policy == name {
			return &PolicyStatus{InForce: true}
		}
		if !slices.Contains(winners, a.RateLimit.Policy) {
			winners = append(winners, a.RateLimit.Policy)
		}
	}
	switch len(winners) {
	case 0:
		if !selected {
			return &PolicyStatus{Reason: fmt.Sprintf("service %s selects no workload", ref)}
		}
		return &PolicyStatus{Reason: fmt.Sprintf("not in force on the workloads of service %s", ref)}
	case 1:
		return &PolicyStatus{Reason: fmt.Sprintf("%s already applies to the workloads of service %s (the first by name is in force)", winners[0], ref)}
	}
	return &PolicyStatus{Reason: fmt.Sprintf("%s already apply to the workloads of service %s (the first by name is in force)", strings.Join(winners, " and "), ref)}
}

// orNil turns a nil pointer into a nil Policy interface.
func orNil[P interface {
	comparable
	model.Policy
}](p P) model.Policy {
	var zero P
	if p == zero {
		return nil
	}
	return p
}

// policySummary names what matters about a policy when scanning a list;
// the manifest has the rest.
func policySummary(p model.Policy) string {
	switch p := p.(type) {
	case *model.AuthorizationPolicy:
		var target string
		switch t := p.Target; {
		case t.Service != "":
			target = "service " + t.Service
		case t.ServiceAccount != "":
			target = "service account " + t.ServiceAccount
		default:
			target = "workloads " + joinLabels(t.Selector)
		}
		s := fmt.Sprintf("%s to %s, %s", p.Action, target, plural(len(p.Rules), "rule"))
		if p.Action == model.AuthzAllow && len(p.Rules) == 0 {
			// An allow policy without rules selects its workloads and
			// allows nothing, which deserves saying.
			s += ": denies everything"
		}
		return s
	case *model.TrafficTarget:
		sources := make([]string, len(p.Sources))
		for i, s := range p.Sources {
			sources[i] = s.Namespace + "/" + s.ServiceAccount
		}
		dest := p.Destination.ServiceAccount
		if p.Port != 0 {
			dest += ":" + strconv.FormatUint(uint64(p.Port), 10)
		}
		rules := make([]string, len(p.Rules))
		for i, r := range p.Rules {
			rules[i] = r.Kind + " " + r.Name
			if len(r.Matches) > 0 {
				rules[i] += " [" + strings.Join(r.Matches, ",") + "]"
			}
		}
		return fmt.Sprintf("%s -> %s via %s", strings.Join(sources, ", "), dest, strings.Join(rules, ", "))
	case *model.HTTPRouteGroup:
		names := make([]string, len(p.Matches))
		for i, m := range p.Matches {
			names[i] = m.Name
		}
		return "matches " + strings.Join(names, ", ")
	case *model.TCPRoute:
		if len(p.Ports) == 0 {
			return "any port"
		}
		ports := make([]string, len(p.Ports))
		for i, port := range p.Ports {
			ports[i] = strconv.FormatUint(uint64(port), 10)
		}
		return "ports " + strings.Join(ports, ", ")
	case *model.RetryPolicy:
		return retrySummary(p)
	case *model.FaultPolicy:
		return faultSummary(p)
	case *model.CircuitBreakerPolicy:
		return breakerSummary(p)
	case *model.RateLimitPolicy:
		return rateLimitSummary(p)
	}
	return ""
}

// retrySummary is e.g. "retry 5xx,reset x2, per try 500ms, budget 20% +
// 10/s over 10s"; backoff is left to the manifest.
func retrySummary(p *model.RetryPolicy) string {
	s := fmt.Sprintf("retry %s x%d", strings.Join(p.RetryOn, ","), p.Attempts)
	if p.PerTryTimeout > 0 {
		s += ", per try " + p.PerTryTimeout.String()
	}
	b := p.Budget
	return s + fmt.Sprintf(", budget %s%% + %d/s over %s", formatPercent(b.Ratio*100), b.MinPerSecond, b.Window)
}

// faultSummary is e.g. "delay 2s for 10%, abort 503 for 5%, when
// x-chaos=on"; a fault of 0% is left out, as it never happens, and so is
// the gRPC status of an abort.
func faultSummary(p *model.FaultPolicy) string {
	var parts []string
	if p.DelayPercent > 0 {
		parts = append(parts, fmt.Sprintf("delay %s for %s%%", p.Delay, formatPercent(p.DelayPercent)))
	}
	if p.AbortPercent > 0 {
		parts = append(parts, fmt.Sprintf("abort %d for %s%%", p.AbortHTTPStatus, formatPercent(p.AbortPercent)))
	}
	if len(p.Headers) > 0 {
		headers := make([]string, len(p.Headers))
		for i, h := range p.Headers {
			headers[i] = valueSummary(h)
		}
		parts = append(parts, "when "+strings.Join(headers, " and "))
	}
	return strings.Join(parts, ", ")
}

// breakerSummary is e.g. "max 100 in flight, 10 connections, 50
// pending; 1000 requests per connection; eject after 5 5xx / 3 gateway
// errors / 2 connect failures for 30s+, at most 50%": the ejection time is
// the first one's, which later ones multiply. A bound or a kind of
// failure switched off (0) is left out.
func breakerSummary(p *model.CircuitBreakerPolicy) string {
	var parts, bounds []string
	plural := func(n uint32, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	if p.MaxRequests > 0 {
		bounds = append(bounds, fmt.Sprintf("%d in flight", p.MaxRequests))
	}
	if p.MaxConnections > 0 {
		bounds = append(bounds, plural(p.MaxConnections, "connection", "connections"))
	}
	if p.MaxPendingRequests > 0 {
		bounds = append(bounds, fmt.Sprintf("%d pending", p.MaxPendingRequests))
	}
	if len(bounds) > 0 {
		parts = append(parts, "max "+strings.Join(bounds, ", "))
	}
	if p.MaxRequestsPerConnection > 0 {
		parts = append(parts, plural(p.MaxRequestsPerConnection, "request per connection", "requests per connection"))
	}
	if o := p.Outlier; o != nil {
		var kinds []string
		for _, k := range []struct {
			n         uint32
			one, many string
		}{
			{o.Consecutive5xx, "5xx", "5xx"},
			{o.ConsecutiveGatewayErrors, "gateway error", "gateway errors"},
			{o.ConsecutiveConnectFailures, "connect failure", "connect failures"},
		} {
			switch {
			case k.n == 1:
				kinds = append(kinds, "1 "+k.one)
			case k.n > 1:
				kinds = append(kinds, fmt.Sprintf("%d %s", k.n, k.many))
			}
		}
		parts = append(parts, fmt.Sprintf("eject after %s for %s+, at most %d%%",
			strings.Join(kinds, " / "), o.BaseEjection, o.MaxEjectionPercent))
	}
	return strings.Join(parts, "; ")
}

// rateLimitSummary is e.g. "100 requests/s per workload, burst 200": the
// bucket is each workload's, not shared across the service.
func rateLimitSummary(p *model.RateLimitPolicy) string {
	noun := "requests"
	if p.RequestsPerSecond == 1 {
		noun = "request"
	}
	return fmt.Sprintf("%d %s/s per workload, burst %d", p.RequestsPerSecond, noun, p.Burst)
}

// formatPercent writes a percentage briefly, 10 or 12.5, without the
// float artifacts of a ratio times 100.
func formatPercent(f float64) string { return strconv.FormatFloat(f, 'g', 6, 64) }

func joinLabels(m map[string]string) string {
	kv := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		kv = append(kv, k+"="+m[k])
	}
	return strings.Join(kv, ",")
}

// plural is "no rules", "1 rule", "2 rules".
func plural(n int, noun string) string {
	switch n {
	case 0:
		return "no " + noun + "s"
	case 1:
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// Route is one entry of GET /api/v1/routes.
type Route struct {
	// Kind is HTTPRoute, GRPCRoute or TrafficSplit.
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Parents are the Services the route attaches to, "catalog" or, on one
	// port, "catalog:80".
	Parents []string `json:"parents"`
	// Summary says in one line what the rules do.
	Summary string `json:"summary"`
	// Status says, for each parent, whether the route is in force there.
	Status []RouteStatus `json:"status"`
	// Rejected says why this version of the route is not admitted: a
	// Service or HTTPRouteGroup it names does not exist, or another route
	// in force has one of its matches. The previous version, if any, stays
	// in force.
	Rejected string `json:"rejected,omitempty"`
}

// RouteStatus is a route's state on one parent.
type RouteStatus struct {
	Parent  string `json:"parent"`
	InForce bool   `json:"inForce"`
	// Reasons say why the route is not in force, or what fails although
	// it is.
	Reasons []string `json:"reasons,omitempty"`
}

// Routes lists every route object, by kind, namespace and name, with
// where it is in force.
func (cp *ControlPlane) Routes() []Route { return routes(cp.store.Snapshot()) }

// routes reads the status of each route from the route tables the model
// resolved for its parents, so it says what proxies are told.
func routes(snap *model.Snapshot) []Route {
	out := []Route{}
	var all []*model.Route
	for _, p := range snap.Policies() {
		if r, ok := p.(*model.Route); ok {
			all = append(all, r)
		}
	}
	for _, r := range all {
		k := r.Key()
		rt := Route{Kind: k.Kind, Namespace: k.Ref.Namespace, Name: k.Ref.Name, Parents: []string{}, Summary: routeSummary(r), Status: []RouteStatus{}}
		rejected := snap.RouteRejection(k)
		inForce, admitted := snap.RouteInForce(k)
		var problems []string
		if rejected != nil {
			rt.Rejected = rejectionText(rejected)
			if admitted {
				problems = append(problems, "rejected; the version admitted last stays in force")
			}
		}
		if admitted {
			for _, b := range routeBackends(inForce) {
				ref := model.Ref{Namespace: k.Ref.Namespace, Name: b}
				if _, ok := snap.Service(ref); !ok {
					problems = append(problems, fmt.Sprintf("backend service %s no longer exists; its share of requests fails with 500", ref))
				}
			}
		}
		for _, p := range r.Parents {
			name := routeParent(p)
			rt.Parents = append(rt.Parents, name)
			st := RouteStatus{Parent: name}
			ref := model.Ref{Namespace: k.Ref.Namespace, Name: p.Service}
			svc, ok := snap.Service(ref)
			switch {
			case !ok:
				st.Reasons = []string{fmt.Sprintf("service %s does not exist", ref)}
			case p.Port != 0 && !hasPort(svc.Service, p.Port):
				st.Reasons = []string{fmt.Sprintf("service %s has no port %d", ref, p.Port)}
			case inTable(svc.Routes, k.String(), p.Port):
				st.InForce = true
				st.Reasons = append(slices.Clone(problems), backendPortProblems(snap, inForce, svc.Service, p)...)
			case rejected != nil && !admitted:
				// Rejected says why.
			default:
				st.Reasons = []string{notInForce(r, p, all)}
			}
			rt.Status = append(rt.Status, st)
		}
		out = append(out, rt)
	}
	return out
}

// rejectionText is why the model rejects a route, without the route's
// name, which the listing already shows.
func rejectionText(err error) string {
	var oe *model.ObjectError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}

func hasPort(s *model.Service, port uint32) bool {
	_, ok := s.Port(port)
	return ok
}

// backendPortProblems lists the ports a route's existing backends lack
// for calls to parent p: a backend's own port, or else every port p takes
// calls on, which a backend without a port is called on.
func backendPortProblems(snap *model.Snapshot, r *model.Route, parent *model.Service, p model.RouteParent) []string {
	var callPorts []uint32
	if p.Port != 0 {
		callPorts = []uint32{p.Port}
	} else {
		for _, sp := range parent.Ports {
			callPorts = append(callPorts, sp.Port)
		}
	}
	var out []string
	for _, rule := range r.Rules {
		for _, b := range rule.Backends {
			ref := model.Ref{Namespace: r.Ref.Namespace, Name: b.Service}
			bs, ok := snap.Service(ref)
			if !ok {
				continue
			}
			ports := callPorts
			if b.Port != 0 {
				ports = []uint32{b.Port}
			}
			for _, port := range ports {
				msg := fmt.Sprintf("backend service %s has no port %d", ref, port)
				if !hasPort(bs.Service, port) && !slices.Contains(out, msg) {
					out = append(out, msg)
				}
			}
		}
	}
	return out
}

// inTable reports whether a service's route table has rules of the named
// route on port.
func inTable(t *model.RouteTable, route string, port uint32) bool {
	if t == nil {
		return false
	}
	for _, r := range t.Rules {
		if r.Route == route && r.Port == port {
			return true
		}
	}
	return false
}

// notInForce explains why a route is missing from its existing parent's
// table: a TrafficSplit gives way to the Gateway API routes of the same
// service.
func notInForce(r *model.Route, p model.RouteParent, all []*model.Route) string {
	if r.Kind == model.KindTrafficSplit {
		for _, o := range all {
			if o.Kind == model.KindTrafficSplit || o.Ref.Namespace != r.Ref.Namespace {
				continue
			}
			for _, op := range o.Parents {
				if op.Service == p.Service {
					return fmt.Sprintf("%s addresses the same service; Gateway API routes take precedence over SMI TrafficSplit", o.Key())
				}
			}
		}
	}
	return "not in the service's route table"
}

func routeParent(p model.RouteParent) string {
	if p.Port == 0 {
		return p.Service
	}
	return p.Service + ":" + strconv.FormatUint(uint64(p.Port), 10)
}

// routeBackends lists the services a route sends requests to, each once.
func routeBackends(r *model.Route) []string {
	var out []string
	for _, rule := range r.Rules {
		for _, b := range rule.Backends {
			if !slices.Contains(out, b.Service) {
				out = append(out, b.Service)
			}
		}
	}
	return out
}

// routeSummary is a route's rules in one line, e.g. "2 rules; header
// x-canary=always -> backends catalog-v2; backends catalog-v1 90,
// catalog-v2 10, timeout 2s". Weights show when a rule has more than one
// backend or one of weight other than 1; ports are left to the manifest.
func routeSummary(r *model.Route) string {
	parts := []string{plural(len(r.Rules), "rule")}
	for _, rule := range r.Rules {
		var matches []string
		for _, m := range rule.Matches {
			matches = append(matches, matchSummary(m))
		}
		s := ""
		if len(matches) > 0 {
			s = strings.Join(matches, " or ") + " -> "
		}
		backends := make([]string, len(rule.Backends))
		for i, b := range rule.Backends {
			backends[i] = b.Service
			if len(rule.Backends) > 1 || b.Weight != 1 {
				backends[i] += " " + strconv.FormatUint(uint64(b.Weight), 10)
			}
		}
		s += "backends " + strings.Join(backends, ", ")
		if rule.Timeout > 0 {
			s += ", timeout " + rule.Timeout.String()
		}
		if !rule.RequestHeaders.IsZero() {
			s += ", request headers changed"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// valueSummary is a header or query match: "x=1", or "x~1|2" for an
// expression.
func valueSummary(v model.ValueMatch) string {
	op := "="
	if v.Regex {
		op = "~"
	}
	return v.Name + op + v.Value
}

// matchSummary is a match in a few words: "GET exact /a header x=1".
func matchSummary(m model.RouteMatch) string {
	var words []string
	if m.Method != "" {
		words = append(words, m.Method)
	}
	if p := m.Path; p != nil {
		switch p.Type {
		case model.PathExact:
			words = append(words, "exact "+p.Value)
		case model.PathPrefix:
			words = append(words, "prefix "+p.Value)
		default:
			words = append(words, "regex "+p.Value)
		}
	}
	for _, l := range []struct {
		what string
		vs   []model.ValueMatch
	}{{"header", m.Headers}, {"query", m.Query}} {
		for _, v := range l.vs {
			words = append(words, l.what+" "+valueSummary(v))
		}
	}
	if len(words) == 0 {
		return "any"
	}
	return strings.Join(words, " ")
}
