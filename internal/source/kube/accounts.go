package kube

import (
	"slices"

	"github.com/weftmesh/weft/internal/model"
)

// missingAccounts returns the service accounts ("namespace/name") an
// authorization policy names that do not exist. The policy still applies
// as written (the account may come later, Kubernetes delivers objects in
// any order), but a grant to an account no Pod can run as is most often a
// typo, which a user would otherwise find only as refused requests.
func missingAccounts(p model.Policy, exists map[model.Ref]bool) []string {
	var named []model.Principal
	switch p := p.(type) {
	case *model.AuthorizationPolicy:
		if sa := p.Target.ServiceAccount; sa != "" {
			named = append(named, model.Principal{Namespace: p.Ref.Namespace, ServiceAccount: sa})
		}
		for _, r := range p.Rules {
			named = append(named, r.From...)
		}
	case *model.TrafficTarget:
		named = append(named, p.Destination)
		named = append(named, p.Sources...)
	}
	var out []string
	for _, pr := range named {
		if pr.Namespace == "*" || pr.ServiceAccount == "*" || pr.Namespace == "" || pr.ServiceAccount == "" {
			continue
		}
		r := model.Ref{Namespace: pr.Namespace, Name: pr.ServiceAccount}
		if !exists[r] && !slices.Contains(out, r.String()) {
			out = append(out, r.String())
		}
	}
	return out
}
