package manifest

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

const goodAuthorizationPolicy = `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: catalog-readers, namespace: demo}
spec:
  targetRef: {kind: Service, name: catalog}
  rules:
  - from:
    - serviceAccount: web
    - {serviceAccount: "*", namespace: ops}
    ports: [8080]
    methods: [GET, HEAD]
    paths:
    - {value: /products}
    - {type: RegularExpression, value: "/products/[0-9]+"}
    headers: {x-user: "^alice$"}
`

const goodTrafficTarget = `
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: web-to-catalog, namespace: demo}
spec:
  destination: {kind: ServiceAccount, name: catalog}
  sources:
  - {kind: ServiceAccount, name: web}
  - {kind: ServiceAccount, name: prometheus, namespace: monitoring}
  rules:
  - {kind: HTTPRouteGroup, name: catalog-routes, matches: [read]}
  - {kind: TCPRoute, name: catalog-port}
`

const goodHTTPRouteGroup = `
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: catalog-routes, namespace: demo}
spec:
  matches:
  - name: read
    methods: [GET, HEAD]
    pathRegex: /products.*
  - name: android
    methods: ["*"]
    headers: {user-agent: ".*Android.*"}
`

const goodTCPRoute = `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: catalog-port, namespace: demo}
spec:
  matches:
    ports: [8080, 8443]
`

func TestDecodePolicies(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	tests := []struct {
		desc string
		doc  string
		want model.Policy
	}{
		{"authorization policy", goodAuthorizationPolicy, &model.AuthorizationPolicy{
			Ref:    demo("catalog-readers"),
			Target: model.PolicyTarget{Service: "catalog"},
			Action: model.AuthzAllow,
			Rules: []model.AuthzRule{{
				From:    []model.Principal{{Namespace: "demo", ServiceAccount: "web"}, {Namespace: "ops", ServiceAccount: "*"}},
				Ports:   []uint32{8080},
				Methods: []string{"GET", "HEAD"},
				Paths:   []model.PathMatch{{Type: model.PathPrefix, Value: "/products"}, {Type: model.PathRegex, Value: "/products/[0-9]+"}},
				Headers: map[string]string{"x-user": "^alice$"},
			}},
		}},
		{"deny by selector", `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-loadgen}
spec:
  selector: {matchLabels: {app: catalog}}
  action: Deny
  rules: [{from: [{serviceAccount: loadgen, namespace: "*"}]}]
`, &model.AuthorizationPolicy{
			Ref:    model.Ref{Namespace: DefaultNamespace, Name: "no-loadgen"},
			Target: model.PolicyTarget{Selector: map[string]string{"app": "catalog"}},
			Action: model.AuthzDeny,
			Rules:  []model.AuthzRule{{From: []model.Principal{{Namespace: "*", ServiceAccount: "loadgen"}}}},
		}},
		{"service account target, no rules", `
apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: closed, namespace: demo}
spec:
  targetRef: {kind: ServiceAccount, name: audit}
`, &model.AuthorizationPolicy{Ref: demo("closed"), Target: model.PolicyTarget{ServiceAccount: "audit"}, Action: model.AuthzAllow}},
		{"traffic target v1alpha3", goodTrafficTarget, &model.TrafficTarget{
			Ref:         demo("web-to-catalog"),
			Destination: model.Principal{Namespace: "demo", ServiceAccount: "catalog"},
			Sources:     []model.Principal{{Namespace: "demo", ServiceAccount: "web"}, {Namespace: "monitoring", ServiceAccount: "prometheus"}},
			Rules: []model.TrafficTargetRule{
				{Kind: model.KindHTTPRouteGroup, Name: "catalog-routes", Matches: []string{"read"}},
				{Kind: model.KindTCPRoute, Name: "catalog-port"},
			},
		}},
		{"traffic target v1alpha2 with a port", strings.NewReplacer(
			"v1alpha3", "v1alpha2",
			"name: catalog}", "name: catalog, namespace: demo, port: 8080}",
		).Replace(goodTrafficTarget), &model.TrafficTarget{
			Ref:         demo("web-to-catalog"),
			Destination: model.Principal{Namespace: "demo", ServiceAccount: "catalog"},
			Port:        8080,
			Sources:     []model.Principal{{Namespace: "demo", ServiceAccount: "web"}, {Namespace: "monitoring", ServiceAccount: "prometheus"}},
			Rules: []model.TrafficTargetRule{
				{Kind: model.KindHTTPRouteGroup, Name: "catalog-routes", Matches: []string{"read"}},
				{Kind: model.KindTCPRoute, Name: "catalog-port"},
			},
		}},
		{"http route group v1alpha4", goodHTTPRouteGroup, &model.HTTPRouteGroup{Ref: demo("catalog-routes"), Matches: []model.HTTPRouteMatch{
			{Name: "read", Methods: []string{"GET", "HEAD"}, PathRegex: "/products.*"},
			{Name: "android", Methods: []string{"*"}, Headers: map[string]string{"user-agent": ".*Android.*"}},
		}}},
		{"http route group v1alpha3, headers as a list", `
apiVersion: specs.smi-spec.io/v1alpha3
kind: HTTPRouteGroup
metadata: {name: insiders, namespace: demo}
spec:
  matches:
  - name: android-insiders
    headers:
    - user-agent: ".*Android.*"
    - cookie: "^(.*?;)?(type=insider)(;.*)?$"
`, &model.HTTPRouteGroup{Ref: demo("insiders"), Matches: []model.HTTPRouteMatch{{
			Name:    "android-insiders",
			Headers: map[string]string{"user-agent": ".*Android.*", "cookie": "^(.*?;)?(type=insider)(;.*)?$"},
		}}}},
		{"tcp route v1alpha4", goodTCPRoute, &model.TCPRoute{Ref: demo("catalog-port"), Ports: []uint32{8080, 8443}}},
		{"tcp route v1alpha3, any port", `
apiVersion: specs.smi-spec.io/v1alpha3
kind: TCPRoute
metadata: {name: any, namespace: demo}
spec: {}
`, &model.TCPRoute{Ref: demo("any")}},
		{"tcp route v1alpha4 without spec", `
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: any, namespace: demo}
`, &model.TCPRoute{Ref: demo("any")}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOnePolicy(t, tc.doc, tc.want)
		})
	}
}
