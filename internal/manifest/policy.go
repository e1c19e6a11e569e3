package manifest

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/weftmesh/weft/api/smi"
	weftv1alpha1 "github.com/weftmesh/weft/api/weft/v1alpha1"
	"github.com/weftmesh/weft/internal/model"
)

// kindServiceAccount is the only identity kind SMI subjects and weft's
// targetRefs name.
const kindServiceAccount = "ServiceAccount"

// AuthorizationPolicyFromV1alpha1 converts and validates a weft
// AuthorizationPolicy. Empty fields take their defaults here, so the model
// never sees an unset action, path type or source namespace.
func AuthorizationPolicyFromV1alpha1(p *weftv1alpha1.AuthorizationPolicy) (*model.AuthorizationPolicy, error) {
	var fe model.FieldErrors
	ns := namespaceOf(p.Namespace)
	out := &model.AuthorizationPolicy{
		Ref:    model.Ref{Namespace: ns, Name: p.Name},
		Action: model.AuthzAction(cmp.Or(p.Spec.Action, string(model.AuthzAllow))),
	}
	if t := p.Spec.TargetRef; t != nil {
		switch t.Kind {
		case KindService:
			out.Target.Service = t.Name
		case kindServiceAccount:
			out.Target.ServiceAccount = t.Name
		default:
			fe.Add("spec.targetRef.kind", "%q: want Service or ServiceAccount", t.Kind)
		}
		if t.Name == "" {
			fe.Add("spec.targetRef.name", "must not be empty")
		}
	}
	if s := p.Spec.Selector; s != nil {
		out.Target.Selector = s.MatchLabels
	}
	for i, r := range p.Spec.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		rule := model.AuthzRule{
			Ports:   portNumbers(&fe, f+".ports", r.Ports),
			Methods: r.Methods,
			Headers: headerFilters(&fe, f+".headers", []map[string]string{r.Headers}),
		}
		for _, s := range r.From {
			rule.From = append(rule.From, model.Principal{Namespace: cmp.Or(s.Namespace, ns), ServiceAccount: s.ServiceAccount})
		}
		for _, pm := range r.Paths {
			rule.Paths = append(rule.Paths, model.PathMatch{Type: model.PathMatchType(cmp.Or(pm.Type, string(model.PathPrefix))), Value: pm.Value})
		}
		out.Rules = append(out.Rules, rule)
	}
	return checked(fe, out)
}

// TrafficTargetFromSMI converts and validates an SMI TrafficTarget of
// access.smi-spec.io v1alpha2 or v1alpha3. Namespaces left empty are the
// TrafficTarget's own.
func TrafficTargetFromSMI(t *smi.TrafficTarget) (*model.TrafficTarget, error) {
	var fe model.FieldErrors
	ns := namespaceOf(t.Namespace)
	d := t.Spec.Destination
	checkServiceAccountKind(&fe, "spec.destination.kind", d.Kind)
	out := &model.TrafficTarget{
		Ref:         model.Ref{Namespace: ns, Name: t.Name},
		Destination: model.Principal{Namespace: cmp.Or(d.Namespace, ns), ServiceAccount: d.Name},
	}
	if d.Port != nil {
		// v1alpha3 has no such field: honoured here but dropped by
		// Kubernetes' v1alpha3 schema, it would make one manifest open one
		// port here and every port there. Only an explicit v1alpha3 is
		// refused, since objects from a typed client carry no apiVersion.
		if t.APIVersion == smi.AccessV1alpha3 {
			fe.Add("spec.destination.port", "%s has no destination port: name the ports in a %s TCPRoute, or use %s", smi.AccessV1alpha3, smi.SpecsV1alpha4, smi.AccessV1alpha2)
		} else {
			out.Port = portNumber(&fe, "spec.destination.port", *d.Port)
		}
	}
	for i, s := range t.Spec.Sources {
		checkServiceAccountKind(&fe, fmt.Sprintf("spec.sources[%d].kind", i), s.Kind)
		out.Sources = append(out.Sources, model.Principal{Namespace: cmp.Or(s.Namespace, ns), ServiceAccount: s.Name})
	}
	for _, r := range t.Spec.Rules {
		out.Rules = append(out.Rules, model.TrafficTargetRule{Kind: r.Kind, Name: r.Name, Matches: r.Matches})
	}
	return checked(fe, out)
}

func checkServiceAccountKind(fe *model.FieldErrors, field, kind string) {
	if kind != kindServiceAccount {
		fe.Add(field, "%q: want ServiceAccount", kind)
	}
}

// HTTPRouteGroupFromSMI converts and validates an SMI HTTPRouteGroup of
// specs.smi-spec.io v1alpha4 or v1alpha3.
func HTTPRouteGroupFromSMI(g *smi.HTTPRouteGroup) (*model.HTTPRouteGroup, error) {
	var fe model.FieldErrors
	out := &model.HTTPRouteGroup{Ref: model.Ref{Namespace: namespaceOf(g.Namespace), Name: g.Name}}
	for i, m := range g.Spec.Matches {
		out.Matches = append(out.Matches, model.HTTPRouteMatch{
			Name:      m.Name,
			Methods:   m.Methods,
			PathRegex: m.PathRegex,
			Headers:   headerFilters(&fe, fmt.Sprintf("spec.matches[%d].headers", i), m.Headers),
		})
	}
	return checked(fe, out)
}

// TCPRouteFromSMI converts and validates an SMI TCPRoute of
// specs.smi-spec.io v1alpha4 (ports) or v1alpha3 (no spec: any port).
func TCPRouteFromSMI(r *smi.TCPRoute) (*model.TCPRoute, error) {
	var fe model.FieldErrors
	out := &model.TCPRoute{Ref: model.Ref{Namespace: namespaceOf(r.Namespace), Name: r.Name}}
	if m := r.Spec.Matches; m != nil {
		// Refused for the reason a v1alpha3 TrafficTarget's port is.
		if r.APIVersion == smi.SpecsV1alpha3 {
			fe.Add("spec.matches", "a %s TCPRoute has no matches and takes any port: use %s to name ports", smi.SpecsV1alpha3, smi.SpecsV1alpha4)
		} else {
			out.Ports = portNumbers(&fe, "spec.matches.ports", m.Ports)
		}
	}
	return checked(fe, out)
}

// headerFilters merges header filters into one map. Header names are case
// insensitive, so a name given twice in any case is an error rather than
// one expression silently replacing the other.
func headerFilters(fe *model.FieldErrors, field string, filters []map[string]string) map[string]string {
	var out map[string]string
	seen := map[string]bool{}
	for _, m := range filters {
		for _, name := range slices.Sorted(maps.Keys(m)) {
			if seen[strings.ToLower(name)] {
				fe.Add(field, "header %q is given twice", name)
				continue
			}
			seen[strings.ToLower(name)] = true
			if out == nil {
				out = map[string]string{}
			}
			out[name] = m[name]
		}
	}
	return out
}
