package wire

import (
	"errors"
	"fmt"
	"slices"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// AuthzToProto converts a workload's authorization; nil (no policy selects
// the workload) is an update with no Authz.
func AuthzToProto(a *model.Authz) *meshv1.AuthzUpdate {
	if a == nil {
		return &meshv1.AuthzUpdate{}
	}
	grants := func(gs []model.AuthzGrant) []*meshv1.AuthzGrant {
		out := make([]*meshv1.AuthzGrant, len(gs))
		for i, g := range gs {
			out[i] = &meshv1.AuthzGrant{Policy: g.Policy, Rule: ruleToProto(g.Rule)}
		}
		return out
	}
	out := &meshv1.Authz{Selected: a.Selected, Permissive: a.Permissive, Allow: grants(a.Allow), Deny: grants(a.Deny)}
	if r := a.RateLimit; r != nil {
		out.RateLimit = &meshv1.RateLimit{Policy: r.Policy, RequestsPerSecond: r.RequestsPerSecond, Burst: r.Burst}
	}
	return &meshv1.AuthzUpdate{Authz: out}
}

func ruleToProto(r model.AuthzRule) *meshv1.AuthzRule {
	out := &meshv1.AuthzRule{Ports: slices.Clone(r.Ports), Methods: slices.Clone(r.Methods), Headers: cloneMap(r.Headers)}
	for _, p := range r.From {
		out.From = append(out.From, &meshv1.Principal{Namespace: p.Namespace, ServiceAccount: p.ServiceAccount})
	}
	for _, p := range r.Paths {
		out.Paths = append(out.Paths, &meshv1.PathMatch{Type: string(p.Type), Value: p.Value})
	}
	return out
}

// AuthzFromProto converts and validates an authorization update; nil
// means no policy selects the workload. A proxy refuses an update that
// does not validate whole: enforcing part of a policy could open what the
// rest closes.
func AuthzFromProto(u *meshv1.AuthzUpdate) (*model.Authz, error) {
	if u == nil {
		return nil, errors.New("authz: must be set")
	}
	a := u.GetAuthz()
	if a == nil {
		return nil, nil
	}
	f := &fields{prefix: "authz"}
	grants := func(name string, gs []*meshv1.AuthzGrant) []model.AuthzGrant {
		out := make([]model.AuthzGrant, 0, len(gs))
		for i, g := range gs {
			if g.GetRule() == nil {
				f.add(fmt.Sprintf("%s[%d].rule", name, i), "must be set")
				continue
			}
			out = append(out, model.AuthzGrant{Policy: g.GetPolicy(), Rule: ruleFromProto(g.GetRule())})
		}
		return out
	}
	out := &model.Authz{Selected: a.GetSelected(), Permissive: a.GetPermissive(), Allow: grants("allow", a.GetAllow()), Deny: grants("deny", a.GetDeny())}
	if r := a.GetRateLimit(); r != nil {
		out.RateLimit = &model.RateLimit{Policy: r.GetPolicy(), RequestsPerSecond: r.GetRequestsPerSecond(), Burst: r.GetBurst()}
	}
	if err := f.err(); err != nil {
		return nil, err
	}
	if err := out.Validate(); err != nil {
		return nil, fmt.Errorf("authz: %w", err)
	}
	return out, nil
}

func ruleFromProto(r *meshv1.AuthzRule) model.AuthzRule {
	out := model.AuthzRule{Ports: slices.Clone(r.GetPorts()), Methods: slices.Clone(r.GetMethods()), Headers: cloneMap(r.GetHeaders())}
	for _, p := range r.GetFrom() {
		out.From = append(out.From, model.Principal{Namespace: p.GetNamespace(), ServiceAccount: p.GetServiceAccount()})
	}
	for _, p := range r.GetPaths() {
		out.Paths = append(out.Paths, model.PathMatch{Type: model.PathMatchType(p.GetType()), Value: p.GetValue()})
	}
	return out
}
