package authz

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/match"
)

// Policy is a compiled authorization. The nil Policy allows everything:
// no policy selects the workload.
type Policy struct {
	selected bool
	allow    []rule
	deny     []rule
	// policies names the allow policies, for the reason of a denial no
	// rule matched.
	policies string
}

type rule struct {
	policy  string
	from    []model.Principal
	ports   []uint32
	methods []string
	paths   []func(path string) bool
	headers []headerMatcher
}

type headerMatcher struct {
	name string
	re   *regexp.Regexp
}

// Compile turns a resolved authorization into a Policy; nil gives nil.
func Compile(a *model.Authz) (*Policy, error) {
	if a == nil {
		return nil, nil
	}
	p := &Policy{selected: a.Selected}
	var names []string
	for i, g := range a.Allow {
		r, err := compileRule(g)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %w", i, err)
		}
		p.allow = append(p.allow, r)
		if !slices.Contains(names, g.Policy) {
			names = append(names, g.Policy)
		}
	}
	for i, g := range a.Deny {
		r, err := compileRule(g)
		if err != nil {
			return nil, fmt.Errorf("deny[%d]: %w", i, err)
		}
		p.deny = append(p.deny, r)
	}
	p.policies = strings.Join(names, ", ")
	return p, nil
}

func compileRule(g model.AuthzGrant) (rule, error) {
	r := rule{policy: g.Policy, from: g.Rule.From, ports: g.Rule.Ports, methods: g.Rule.Methods}
	for _, pm := range g.Rule.Paths {
		m, err := match.Path(pm)
		if err != nil {
			return rule{}, fmt.Errorf("%s: %w", g.Policy, err)
		}
		r.paths = append(r.paths, m)
	}
	for _, name := range slices.Sorted(maps.Keys(g.Rule.Headers)) {
		re, err := match.Whole(g.Rule.Headers[name])
		if err != nil {
			return rule{}, fmt.Errorf("%s: header %s: %w", g.Policy, name, err)
		}
		r.headers = append(r.headers, headerMatcher{name: http.CanonicalHeaderKey(name), re: re})
	}
	return r, nil
}

// Request is what a decision looks at.
type Request struct {
	// Source is the peer's verified identity; nil when the peer proved
	// none (plaintext).
	Source *model.Principal
	// Port is the workload port asked for.
	Port uint32
	// HTTP is the request; nil for an opaque TCP connection.
	HTTP *http.Request
}

// Decision is the outcome, with the policy that made it, for logs and
// metrics.
type Decision struct {
	Allowed bool
	// Matched is set when a rule decided, not the default.
	Matched bool
	// Policy names the policy whose rule decided; for a denial no rule
	// matched, the allow policies that select the workload.
	Policy string
}

// Decide evaluates req: any matching deny rule denies; otherwise, when an
// allow policy selects the workload, only a matching allow rule allows.
func (p *Policy) Decide(req Request) Decision {
	if p == nil {
		return Decision{Allowed: true}
	}
	for i := range p.deny {
		if p.deny[i].matches(req, true) {
			return Decision{Allowed: false, Matched: true, Policy: p.deny[i].policy}
		}
	}
	if !p.selected {
		return Decision{Allowed: true}
	}
	for i := range p.allow {
		if p.allow[i].matches(req, false) {
			return Decision{Allowed: true, Matched: true, Policy: p.allow[i].policy}
		}
	}
	return Decision{Allowed: false, Policy: p.policies}
}

// matches reports whether the rule matches req. A tunnel (an opaque
// connection, or an upgrade such as WebSocket) carries no request the
// proxy can read: a rule with HTTP conditions matches it when it denies,
// and not when it allows, so that no tunnel slips past a deny rule and
// none is let in on a rule it cannot be checked against.
func (r *rule) matches(req Request, deny bool) bool {
	if len(r.from) > 0 && !slices.ContainsFunc(r.from, func(f model.Principal) bool { return principalMatches(f, req.Source) }) {
		return false
	}
	if len(r.ports) > 0 && !slices.Contains(r.ports, req.Port) {
		return false
	}
	if len(r.methods) == 0 && len(r.paths) == 0 && len(r.headers) == 0 {
		return true
	}
	if req.HTTP == nil {
		return deny
	}
	if len(r.methods) > 0 && !slices.Contains(r.methods, req.HTTP.Method) && !slices.Contains(r.methods, "*") {
		return false
	}
	if len(r.paths) > 0 && !slices.ContainsFunc(r.paths, func(m func(string) bool) bool { return m(req.HTTP.URL.Path) }) {
		return false
	}
	for _, h := range r.headers {
		if !slices.ContainsFunc(req.HTTP.Header.Values(h.name), h.re.MatchString) {
			return false
		}
	}
	return true
}

// principalMatches: a rule's source names an identity, so a peer without
// one (plaintext) never matches it.
func principalMatches(f model.Principal, src *model.Principal) bool {
	if src == nil {
		return false
	}
	return (f.Namespace == "*" || f.Namespace == src.Namespace) && (f.ServiceAccount == "*" || f.ServiceAccount == src.ServiceAccount)
}
