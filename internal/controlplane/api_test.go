package controlplane

import (
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

func TestPolicySummary(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	tests := []struct {
		desc   string
		policy model.Policy
		want   string
	}{
		{"allow to a service", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{Service: "catalog"}, Action: model.AuthzAllow,
			Rules: []model.AuthzRule{{}, {}}}, "Allow to service catalog, 2 rules"},
		{"deny by labels", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{Selector: map[string]string{"version": "v2", "app": "catalog"}},
			Action: model.AuthzDeny, Rules: []model.AuthzRule{{}}}, "Deny to workloads app=catalog,version=v2, 1 rule"},
		{"allow nothing", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{ServiceAccount: "audit"}, Action: model.AuthzAllow},
			"Allow to service account audit, no rules: denies everything"},
		{"deny nothing", &model.AuthorizationPolicy{Ref: demo("p"), Target: model.PolicyTarget{ServiceAccount: "audit"}, Action: model.AuthzDeny},
			"Deny to service account audit, no rules"},
		{"traffic target", &model.TrafficTarget{Ref: demo("t"), Destination: model.Principal{Namespace: "demo", ServiceAccount: "catalog"}, Port: 8080,
			Sources: []model.Principal{{Namespace: "demo", ServiceAccount: "web"}, {Namespace: "ops", ServiceAccount: "prometheus"}},
			Rules:   []model.TrafficTargetRule{{Kind: model.KindHTTPRouteGroup, Name: "routes", Matches: []string{"read", "list"}}, {Kind: model.KindTCPRoute, Name: "admin"}}},
			"demo/web, ops/prometheus -> catalog:8080 via HTTPRouteGroup routes [read,list], TCPRoute admin"},
		{"route group", &model.HTTPRouteGroup{Ref: demo("g"), Matches: []model.HTTPRouteMatch{{Name: "read"}, {Name: "write"}}}, "matches read, write"},
		{"tcp route", &model.TCPRoute{Ref: demo("r"), Ports: []uint32{7000, 7001}}, "ports 7000, 7001"},
		{"tcp route, any port", &model.TCPRoute{Ref: demo("r")}, "any port"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := policySummary(tc.policy); got != tc.want {
				t.Errorf("summary = %q, want %q", got, tc.want)
			}
		})
	}
}
