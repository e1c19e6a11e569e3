package manifest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/testutil/golden"
)

const goodHTTPRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-canary, namespace: demo}
spec:
  parentRefs:
  - {group: "", kind: Service, name: catalog, port: 80}
  rules:
  - matches:
    - headers: [{name: x-canary, value: always}]
    - path: {type: Exact, value: /products/new}
      method: GET
      queryParams: [{type: RegularExpression, name: beta, value: "1|true"}]
    backendRefs:
    - {name: catalog-v2, port: 80}
  - matches:
    - path: {type: PathPrefix, value: /products/}
      headers: [{type: RegularExpression, name: user-agent, value: ".*Android.*"}]
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-route, value: catalog-canary}]
        add: [{name: x-trace, value: "1"}]
        remove: [x-debug]
    backendRefs:
    - {name: catalog-v1, port: 80, weight: 90}
    - {name: catalog-v2, port: 80, weight: 10}
    timeouts: {request: 10s}
  - matches:
    - path: {value: /}
    - {}
    backendRefs: [{name: catalog, kind: Service, group: ""}]
    timeouts: {request: 0s}
`

const goodGRPCRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: stock-canary, namespace: demo}
spec:
  parentRefs: [{group: core, kind: Service, name: stock}]
  rules:
  - matches:
    - method: {service: weft.demo.v1.Stock, method: GetStock}
      headers: [{name: x-canary, value: always}]
    - method: {service: weft.demo.v1.Stock}
    - method: {method: WatchStock}
    - method: {type: RegularExpression, service: 'weft\.demo\.v1\..*', method: 'Get.*|Watch.*'}
    - method: {type: RegularExpression, method: 'Get.*'}
    filters:
    - type: RequestHeaderModifier
      requestHeaderModifier: {set: [{name: x-route, value: stock-canary}]}
    backendRefs: [{name: stock-v2, port: 9090}]
  - backendRefs: [{name: stock, weight: 0}]
`

const goodTrafficSplit = `
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: {name: catalog-split, namespace: demo}
spec:
  service: catalog
  backends:
  - {service: catalog-v1, weight: 90}
  - {service: catalog-v2, weight: 10}
`

func TestDecodeRoutes(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	split := &model.Route{
		Kind: model.KindTrafficSplit, Ref: demo("catalog-split"),
		Parents: []model.RouteParent{{Service: "catalog"}},
		Rules: []model.RouteRule{{Backends: []model.RouteBackend{
			{Service: "catalog-v1", Weight: 90}, {Service: "catalog-v2", Weight: 10},
		}}},
	}
	tests := []struct {
		desc string
		doc  string
		want *model.Route
	}{
		{"http route", goodHTTPRoute, &model.Route{
			Kind: model.KindHTTPRoute, Ref: demo("catalog-canary"),
			Parents: []model.RouteParent{{Service: "catalog", Port: 80}},
			Rules: []model.RouteRule{
				{
					Matches: []model.RouteMatch{
						{Headers: []model.ValueMatch{{Name: "x-canary", Value: "always"}}},
						{
							Path:   &model.PathMatch{Type: model.PathExact, Value: "/products/new"},
							Method: "GET",
							Query:  []model.ValueMatch{{Name: "beta", Value: "1|true", Regex: true}},
						},
					},
					Backends: []model.RouteBackend{{Service: "catalog-v2", Port: 80, Weight: 1}},
				},
				{
					Matches: []model.RouteMatch{{
						Path:    &model.PathMatch{Type: model.PathPrefix, Value: "/products"},
						Headers: []model.ValueMatch{{Name: "user-agent", Value: ".*Android.*", Regex: true}},
					}},
					Backends: []model.RouteBackend{{Service: "catalog-v1", Port: 80, Weight: 90}, {Service: "catalog-v2", Port: 80, Weight: 10}},
					Timeout:  10 * time.Second,
					RequestHeaders: model.HeaderModifier{
						Set:    map[string]string{"x-route": "catalog-canary"},
						Add:    map[string]string{"x-trace": "1"},
						Remove: []string{"x-debug"},
					},
				},
				{Backends: []model.RouteBackend{{Service: "catalog", Weight: 1}}},
			},
		}},
		{"http route, defaults", `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog}]
  rules:
  - matches: [{path: {value: /api}}, {path: {type: RegularExpression, value: "/v[0-9]+/.*"}}]
    backendRefs: [{name: catalog-v1}]
    timeouts: {request: 1m30s}
`, &model.Route{
			Kind: model.KindHTTPRoute, Ref: model.Ref{Namespace: DefaultNamespace, Name: "r"},
			Parents: []model.RouteParent{{Service: "catalog"}},
			Rules: []model.RouteRule{{
				Matches: []model.RouteMatch{
					{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/api"}},
					{Path: &model.PathMatch{Type: model.PathRegex, Value: "/v[0-9]+/.*"}},
				},
				Backends: []model.RouteBackend{{Service: "catalog-v1", Weight: 1}},
				Timeout:  90 * time.Second,
			}},
		}},
		{"grpc route", goodGRPCRoute, &model.Route{
			Kind: model.KindGRPCRoute, Ref: demo("stock-canary"),
			Parents: []model.RouteParent{{Service: "stock"}},
			Rules: []model.RouteRule{
				{
					Matches: []model.RouteMatch{
						{
							Path:    &model.PathMatch{Type: model.PathExact, Value: "/weft.demo.v1.Stock/GetStock"},
							Headers: []model.ValueMatch{{Name: "x-canary", Value: "always"}},
						},
						{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/weft.demo.v1.Stock/"}},
						{Path: &model.PathMatch{Type: model.PathRegex, Value: "/[^/]+/WatchStock"}},
						{Path: &model.PathMatch{Type: model.PathRegex, Value: `/(?:weft\.demo\.v1\..*)/(?:Get.*|Watch.*)`}},
						{Path: &model.PathMatch{Type: model.PathRegex, Value: "/[^/]+/(?:Get.*)"}},
					},
					Backends:       []model.RouteBackend{{Service: "stock-v2", Port: 9090, Weight: 1}},
					RequestHeaders: model.HeaderModifier{Set: map[string]string{"x-route": "stock-canary"}},
				},
				{Backends: []model.RouteBackend{{Service: "stock", Weight: 0}}},
			},
		}},
		{"traffic split v1alpha4", goodTrafficSplit, split},
		{"traffic split v1alpha3", strings.Replace(goodTrafficSplit, "v1alpha4", "v1alpha3", 1), split},
		{"traffic split v1alpha2", strings.Replace(goodTrafficSplit, "v1alpha4", "v1alpha2", 1), split},
		{"traffic split, empty matches", strings.Replace(goodTrafficSplit, "backends:", "matches: []\n  backends:", 1), split},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOnePolicy(t, tc.doc, tc.want)
		})
	}
}

func toJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDecodeRouteErrors(t *testing.T) {
	http := func(old, new string) string { return mustReplace(t, goodHTTPRoute, old, new) }
	grpc := func(old, new string) string { return mustReplace(t, goodGRPCRoute, old, new) }
	split := func(old, new string) string { return mustReplace(t, goodTrafficSplit, old, new) }
	const parent = `{group: "", kind: Service, name: catalog, port: 80}`
	tests := []struct {
		desc string
		doc  string
		want []string
	}{
		// Parents.
		{"gateway parent by default", http(parent, "{name: gw}"),
			[]string{"httproute demo/catalog-canary", "spec.parentRefs[0].kind: weft supports Service parents (GAMMA); Gateway is not supported"}},
		{"gateway parent", http(parent, "{group: gateway.networking.k8s.io, kind: Gateway, name: gw}"),
			[]string{"spec.parentRefs[0].kind: weft supports Service parents (GAMMA); Gateway is not supported"}},
		{"service parent without group", http(parent, "{kind: Service, name: catalog}"),
			[]string{`spec.parentRefs[0].group: must be "" for a Service: Gateway API reads an omitted group as gateway.networking.k8s.io`}},
		{"service parent of another group", http(parent, "{group: mcs.k8s.io, kind: Service, name: catalog}"),
			[]string{`spec.parentRefs[0].group: "mcs.k8s.io"`}},
		{"cross-namespace parent", http(parent, `{group: "", kind: Service, name: catalog, namespace: shop}`),
			[]string{`spec.parentRefs[0].namespace: "shop": weft attaches a route to Services of its own namespace (demo)`}},
		{"parent section name", http(parent, `{group: "", kind: Service, name: catalog, sectionName: http}`),
			[]string{"spec.parentRefs[0].sectionName: not supported yet"}},
		{"parent port", http("port: 80}", "port: 0}"),
			[]string{"spec.parentRefs[0].port: must be between 1 and 65535, got 0"}},
		{"parent twice", http("  - "+parent, "  - "+parent+"\n  - "+parent),
			[]string{"spec.parentRefs[1]: names Service catalog, port 80, a second time"}},
		{"parent name", http("name: catalog, port", "name: Catalog, port"),
			[]string{"spec.parentRefs[0].name"}},
		{"no parents", http("  - "+parent+"\n", ""),
			[]string{"spec.parentRefs: name at least one Service"}},
		{"default gateways", http("  parentRefs:", "  useDefaultGateways: All\n  parentRefs:"),
			[]string{`spec.useDefaultGateways: "All"`}},
		{"hostnames", http("  parentRefs:", "  hostnames: [catalog.demo]\n  parentRefs:"),
			[]string{"spec.hostnames: not used by routes attached to a Service (GAMMA)"}},
		// Backends.
		{"negative weight", http("weight: 90", "weight: -1"),
			[]string{"spec.rules[1].backendRefs[0].weight: must not be negative, got -1"}},
		{"weight too large", http("weight: 90", "weight: 2000000"),
			[]string{"spec.rules[1].backendRefs[0].weight: 2000000: at most 1000000"}},
		{"unknown backend kind", http("{name: catalog-v2, port: 80}", "{kind: ServiceImport, name: catalog-v2, port: 80}"),
			[]string{`spec.rules[0].backendRefs[0].kind: "ServiceImport": weft routes to Services only`}},
		{"backend group", http("{name: catalog-v2, port: 80}", "{group: example.com, name: catalog-v2, port: 80}"),
			[]string{`spec.rules[0].backendRefs[0].group: "example.com"`}},
		{"cross-namespace backend", http("{name: catalog-v2, port: 80}", "{name: catalog-v2, namespace: shop, port: 80}"),
			[]string{`spec.rules[0].backendRefs[0].namespace: "shop": backends in other namespaces are not supported yet`}},
		{"backend port", http("{name: catalog-v2, port: 80}", "{name: catalog-v2, port: 70000}"),
			[]string{"spec.rules[0].backendRefs[0].port: must be between 1 and 65535, got 70000"}},
		{"no backends", http("    backendRefs:\n    - {name: catalog-v2, port: 80}\n", ""),
			[]string{"spec.rules[0].backendRefs: name at least one backend Service"}},
		{"no rules", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: r}\nspec:\n  parentRefs: [" + parent + "]\n",
			[]string{"spec.rules: name at least one rule"}},
		// Filters.
		{"extension ref", http("    - type: RequestHeaderModifier\n      requestHeaderModifier:", "    - type: ExtensionRef\n      extensionRef: {group: example.com, kind: Filter, name: f}\n    - type: RequestHeaderModifier\n      requestHeaderModifier:"),
			[]string{`spec.rules[1].filters[0].type: "ExtensionRef": not supported yet`}},
		{"filter settings of another type", http("    - type: RequestHeaderModifier\n      requestHeaderModifier:", "    - type: RequestHeaderModifier\n      urlRewrite: {hostname: example.com}\n      requestHeaderModifier:"),
			[]string{"spec.rules[1].filters[0].urlRewrite: set in a filter of type RequestHeaderModifier"}},
		{"filter without settings", http("      requestHeaderModifier:\n        set: [{name: x-route, value: catalog-canary}]\n        add: [{name: x-trace, value: \"1\"}]\n        remove: [x-debug]\n", ""),
			[]string{"spec.rules[1].filters[0].requestHeaderModifier: must be set for type RequestHeaderModifier"}},
		{"two header modifiers", http("        remove: [x-debug]\n", "        remove: [x-debug]\n    - type: RequestHeaderModifier\n      requestHeaderModifier: {remove: [x-other]}\n"),
			[]string{"spec.rules[1].filters[1]: a rule has at most one RequestHeaderModifier filter"}},
		{"header set twice", http("set: [{name: x-route, value: catalog-canary}]", "set: [{name: x-route, value: a}, {name: X-Route, value: b}]"),
			[]string{`spec.rules[1].filters[0].requestHeaderModifier.set[1].name: header "X-Route" is given twice`}},
		{"bad header name", http("remove: [x-debug]", `remove: ["x debug"]`),
			[]string{`spec.rules[1].filters[0].requestHeaderModifier.remove[0]: "x debug" is not a header name`}},
		{"bad header value", http("value: catalog-canary}", `value: "a\nb"}`),
			[]string{"spec.rules[1].filters[0].requestHeaderModifier.set[0].value"}},
		{"backend filter", http("{name: catalog-v2, port: 80}", "{name: catalog-v2, port: 80, filters: [{type: RequestHeaderModifier, requestHeaderModifier: {remove: [x-a]}}]}"),
			[]string{"spec.rules[0].backendRefs[0].filters[0]: RequestHeaderModifier: filters on a backendRef are not supported yet"}},
		// Matches.
		{"bad header regex", http(`value: ".*Android.*"`, `value: "(Android"`),
			[]string{"spec.rules[1].matches[0].headers[0].value", "missing closing )"}},
		{"bad path regex", http("{type: Exact, value: /products/new}", "{type: RegularExpression, value: /products/(}"),
			[]string{"spec.rules[0].matches[1].path.value"}},
		{"bad query regex", http(`value: "1|true"`, `value: "1|("`),
			[]string{"spec.rules[0].matches[1].queryParams[0].value"}},
		{"path type", http("type: Exact", "type: Glob"),
			[]string{`spec.rules[0].matches[1].path.type: "Glob"`}},
		{"relative path", http("value: /products/new", "value: products"),
			[]string{`spec.rules[0].matches[1].path.value: "products": a path starts with /`}},
		{"unnormalized path", http("value: /products/new", "value: /products/../admin"),
			[]string{"spec.rules[0].matches[1].path.value", "must be normalized"}},
		{"method", http("method: GET", "method: get"),
			[]string{`spec.rules[0].matches[1].method: "get": want an HTTP method in upper case`}},
		{"header match type", http("{name: x-canary, value: always}", "{type: Prefix, name: x-canary, value: always}"),
			[]string{`spec.rules[0].matches[0].headers[0].type: "Prefix": want Exact or RegularExpression`}},
		{"header matched twice", http("{name: x-canary, value: always}", "{name: x-canary, value: always}, {name: X-Canary, value: never}"),
			[]string{"spec.rules[0].matches[0].headers[1].name"}},
		// Timeouts and the rest.
		{"backend request longer than request", http("timeouts: {request: 10s}", "timeouts: {request: 10s, backendRequest: 11s}"),
			[]string{"spec.rules[1].timeouts.backendRequest: 11s is longer than timeouts.request (10s)"}},
		{"bad backend request timeout", http("timeouts: {request: 10s}", "timeouts: {backendRequest: 2.5s}"),
			[]string{`spec.rules[1].timeouts.backendRequest: "2.5s": want a Gateway API duration`}},
		{"bad timeout", http("request: 10s", "request: 1.5s"),
			[]string{`spec.rules[1].timeouts.request: "1.5s": want a Gateway API duration`}},
		{"negative timeout", http("request: 10s", "request: -1s"),
			[]string{`spec.rules[1].timeouts.request: "-1s"`}},
		{"retry", http("timeouts: {request: 10s}", "retry: {attempts: 2}"),
			[]string{"spec.rules[1].retry: not supported: retry the calls to the Service with a RetryPolicy (weft.dev/v1alpha1)"}},
		{"session persistence", http("timeouts: {request: 10s}", "sessionPersistence: {sessionName: s}"),
			[]string{"spec.rules[1].sessionPersistence: not supported yet"}},
		{"unknown field", http("timeouts: {request: 10s}", "timeout: 10s"),
			[]string{`unknown field "spec.rules[1].timeout"`}},
		{"old version", http("gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"),
			[]string{`apiVersion: "gateway.networking.k8s.io/v1beta1": weft reads HTTPRoute as gateway.networking.k8s.io/v1`}},
		// GRPCRoute.
		{"grpc gateway parent", grpc(`{group: core, kind: Service, name: stock}`, "{name: gw}"),
			[]string{"grpcroute demo/stock-canary", "spec.parentRefs[0].kind: weft supports Service parents (GAMMA); Gateway is not supported"}},
		{"grpc bad service regex", grpc(`service: 'weft\.demo\.v1\..*'`, `service: 'weft(.*'`),
			[]string{"spec.rules[0].matches[3].method.service", "missing closing )"}},
		{"grpc bad method regex", grpc(`method: 'Get.*'}`, `method: '*Get'}`),
			[]string{"spec.rules[0].matches[4].method.method"}},
		{"grpc regex too long", grpc(`service: 'weft\.demo\.v1\..*'`, "service: '"+strings.Repeat("a", 1020)+"'"),
			[]string{"spec.rules[0].matches[3].method: longer than 1024 bytes"}},
		{"grpc exact service", grpc("service: weft.demo.v1.Stock, method", "service: weft/Stock, method"),
			[]string{`spec.rules[0].matches[0].method.service: "weft/Stock" is not a gRPC service name`}},
		{"grpc exact method", grpc("method: {method: WatchStock}", "method: {method: Watch.Stock}"),
			[]string{`spec.rules[0].matches[2].method.method: "Watch.Stock" is not a gRPC method name`}},
		{"grpc empty method match", grpc("method: {method: WatchStock}", "method: {type: Exact}"),
			[]string{"spec.rules[0].matches[2].method: set service, method or both"}},
		{"grpc method match type", grpc("method: {method: WatchStock}", "method: {type: Prefix, method: Watch}"),
			[]string{`spec.rules[0].matches[2].method.type: "Prefix"`}},
		{"grpc bad header regex", grpc("{name: x-canary, value: always}", "{type: RegularExpression, name: x-canary, value: '['}"),
			[]string{"spec.rules[0].matches[0].headers[0].value"}},
		{"grpc redirect", grpc("    - type: RequestHeaderModifier", "    - type: RequestRedirect\n    - type: RequestHeaderModifier"),
			[]string{`spec.rules[0].filters[0].type: "RequestRedirect": not supported yet (weft supports RequestHeaderModifier, ResponseHeaderModifier, RequestMirror)`}},
		{"grpc redirect settings", grpc("    - type: RequestHeaderModifier", "    - type: RequestHeaderModifier\n      requestRedirect: {statusCode: 301}"),
			[]string{`unknown field "spec.rules[0].filters[0].requestRedirect"`}},
		{"grpc two mirrors", grpc("    - type: RequestHeaderModifier", "    - {type: RequestMirror, requestMirror: {backendRef: {name: stock, port: 9090}}}\n    - {type: RequestMirror, requestMirror: {backendRef: {name: stock-v2, port: 9090}}}\n    - type: RequestHeaderModifier"),
			[]string{"spec.rules[0].filters[1]: a rule has at most one RequestMirror filter in weft (filters[0] is one)"}},
		{"grpc negative weight", grpc("weight: 0", "weight: -5"),
			[]string{"spec.rules[1].backendRefs[0].weight: must not be negative, got -5"}},
		{"grpc cross-namespace backend", grpc("{name: stock-v2, port: 9090}", "{name: stock-v2, namespace: other, port: 9090}"),
			[]string{"spec.rules[0].backendRefs[0].namespace"}},
		{"grpc has no timeouts", grpc("  - backendRefs: [{name: stock, weight: 0}]", "  - backendRefs: [{name: stock, weight: 0}]\n    timeouts: {request: 1s}"),
			[]string{`unknown field "spec.rules[1].timeouts"`}},
		// TrafficSplit: the split's own field names.
		{"split negative weight", split("weight: 10}", "weight: -10}"),
			[]string{"trafficsplit demo/catalog-split", "spec.backends[1].weight: must not be negative, got -10"}},
		{"split weight too large", split("weight: 10}", "weight: 2000000}"),
			[]string{"spec.backends[1].weight: 2000000: at most 1000000"}},
		{"split weight missing", split("{service: catalog-v2, weight: 10}", "{service: catalog-v2}"),
			[]string{"spec.backends[1].weight: must be set"}},
		{"split backend name", split("service: catalog-v2,", "service: catalog.v2,"),
			[]string{"spec.backends[1].service"}},
		{"split no service", split("  service: catalog\n", ""),
			[]string{"spec.service: must not be empty"}},
		{"split no backends", split("  backends:\n  - {service: catalog-v1, weight: 90}\n  - {service: catalog-v2, weight: 10}\n", ""),
			[]string{"spec.backends: name at least one backend Service"}},
		{"split match of another kind", split("backends:", "matches: [{kind: TCPRoute, name: firefox}]\n  backends:"),
			[]string{`spec.matches[0].kind: "TCPRoute": want HTTPRouteGroup`}},
		{"split match of another group", strings.Replace(split("backends:", "matches: [{apiGroup: example.com, kind: HTTPRouteGroup, name: firefox}]\n  backends:"), "v1alpha4", "v1alpha3", 1),
			[]string{`spec.matches[0].apiGroup: "example.com": want specs.smi-spec.io`}},
		{"split match without a name", split("backends:", "matches: [{kind: HTTPRouteGroup}]\n  backends:"),
			[]string{`spec.matches[0]:`}},
		{"split v1alpha2 matches", strings.Replace(split("backends:", "matches: [{kind: HTTPRouteGroup, name: firefox}]\n  backends:"), "v1alpha4", "v1alpha2", 1),
			[]string{"spec.matches: a split.smi-spec.io/v1alpha2 TrafficSplit has no matches"}},
		{"split v1alpha1", split("v1alpha4", "v1alpha1"),
			[]string{`weft reads TrafficSplit as split.smi-spec.io/v1alpha2 or split.smi-spec.io/v1alpha3 or split.smi-spec.io/v1alpha4`}},
		{"split unknown field", split("weight: 90}", "weight: 90, port: 80}"),
			[]string{`unknown field "spec.backends[0].port"`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOneInvalid(t, tc.doc, tc.want)
		})
	}
}

func mustReplace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("test document lacks %q", old)
	}
	return strings.Replace(s, old, new, 1)
}

// TestRoutesGolden converts testdata/routes.yaml, the route manifests of
// the traffic doc's demo, and compares the model's routes with
// testdata/routes.golden (go test -update rewrites it).
func TestRoutesGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/routes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := Decode("routes.yaml", data)
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	var policies []model.Policy
	for _, o := range d.Objects {
		if o.Policy != nil {
			policies = append(policies, o.Policy)
		}
	}
	got, err := json.MarshalIndent(policies, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden.Check(t, filepath.Join("testdata", "routes.golden"), got)
}

// filterRoute has a rule of each filter weft converts, beside the
// RequestHeaderModifier goodHTTPRoute shows.
const filterRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-filters, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /old/}}, {path: {value: /legacy}}]
    filters:
    - type: RequestRedirect
      requestRedirect:
        scheme: https
        hostname: shop.example.com
        port: 8443
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}
        statusCode: 301
  - matches: [{path: {type: Exact, value: /moved}}]
    filters:
    - type: RequestRedirect
      requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /products}}
  - matches: [{path: {value: /api/v1}}]
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: catalog.demo
        path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: cache-control, value: no-store}]
        add: [{name: x-served-by, value: catalog}]
        remove: [server]
    - type: RequestMirror
      requestMirror: {backendRef: {name: catalog-v2, port: 80}, percent: 25}
    backendRefs: [{name: catalog-v1, port: 80}]
    timeouts: {request: 10s, backendRequest: 2s}
  - matches: [{path: {type: Exact, value: /search}}]
    filters:
    - type: URLRewrite
      urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /v2/search}}
    - type: RequestMirror
      requestMirror: {backendRef: {kind: Service, group: "", name: catalog-v2, port: 80}, fraction: {numerator: 1, denominator: 8}}
    backendRefs: [{name: catalog-v1, port: 80}]
    timeouts: {backendRequest: 500ms}
  - filters:
    - type: RequestMirror
      requestMirror: {backendRef: {name: catalog-v2, port: 80}}
    - type: URLRewrite
      urlRewrite: {hostname: catalog}
    backendRefs: [{name: catalog-v1, port: 80}]
    timeouts: {request: 0s, backendRequest: 1m}
`

const grpcFilterRoute = `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: stock-filters, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: stock}]
  rules:
  - filters:
    - type: ResponseHeaderModifier
      responseHeaderModifier: {remove: [x-internal]}
    - type: RequestMirror
      requestMirror: {backendRef: {name: stock-v2, port: 9090}, fraction: {numerator: 3}}
    backendRefs: [{name: stock, port: 9090}]
`

func TestDecodeRouteFilters(t *testing.T) {
	demo := func(name string) model.Ref { return model.Ref{Namespace: "demo", Name: name} }
	v1 := []model.RouteBackend{{Service: "catalog-v1", Port: 80, Weight: 1}}
	tests := []struct {
		desc string
		doc  string
		want *model.Route
	}{
		{"http route", filterRoute, &model.Route{
			Kind: model.KindHTTPRoute, Ref: demo("catalog-filters"),
			Parents: []model.RouteParent{{Service: "catalog", Port: 80}},
			Rules: []model.RouteRule{
				{
					Matches: []model.RouteMatch{
						{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/old"}},
						{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/legacy"}},
					},
					Redirect: &model.Redirect{
						Scheme: "https", Hostname: "shop.example.com", Port: 8443,
						Path:       model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/new"},
						StatusCode: 301,
					},
				},
				{
					Matches: []model.RouteMatch{{Path: &model.PathMatch{Type: model.PathExact, Value: "/moved"}}},
					Redirect: &model.Redirect{
						Path:       model.PathModifier{Type: model.ReplaceFullPath, Value: "/products"},
						StatusCode: 302,
					},
				},
				{
					Matches:  []model.RouteMatch{{Path: &model.PathMatch{Type: model.PathPrefix, Value: "/api/v1"}}},
					Backends: v1,
					Timeout:  10 * time.Second,
					ResponseHeaders: model.HeaderModifier{
						Set:    map[string]string{"cache-control": "no-store"},
						Add:    map[string]string{"x-served-by": "catalog"},
						Remove: []string{"server"},
					},
					BackendTimeout: 2 * time.Second,
					Rewrite: &model.Rewrite{
						Hostname: "catalog.demo",
						Path:     model.PathModifier{Type: model.ReplacePrefixMatch, Value: "/"},
					},
					Mirror: &model.Mirror{Service: "catalog-v2", Port: 80, Percent: 25},
				},
				{
					Matches:        []model.RouteMatch{{Path: &model.PathMatch{Type: model.PathExact, Value: "/search"}}},
					Backends:       v1,
					BackendTimeout: 500 * time.Millisecond,
					Rewrite:        &model.Rewrite{Path: model.PathModifier{Type: model.ReplaceFullPath, Value: "/v2/search"}},
					Mirror:         &model.Mirror{Service: "catalog-v2", Port: 80, Percent: 12.5},
				},
				{
					Backends:       v1,
					BackendTimeout: time.Minute,
					Rewrite:        &model.Rewrite{Hostname: "catalog"},
					Mirror:         &model.Mirror{Service: "catalog-v2", Port: 80, Percent: 100},
				},
			},
		}},
		{"grpc route", grpcFilterRoute, &model.Route{
			Kind: model.KindGRPCRoute, Ref: demo("stock-filters"),
			Parents: []model.RouteParent{{Service: "stock"}},
			Rules: []model.RouteRule{{
				Backends:        []model.RouteBackend{{Service: "stock", Port: 9090, Weight: 1}},
				ResponseHeaders: model.HeaderModifier{Remove: []string{"x-internal"}},
				Mirror:          &model.Mirror{Service: "stock-v2", Port: 9090, Percent: 3},
			}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOnePolicy(t, tc.doc, tc.want)
		})
	}
}

func TestDecodeRouteFilterErrors(t *testing.T) {
	http := func(old, new string) string { return mustReplace(t, filterRoute, old, new) }
	grpc := func(old, new string) string { return mustReplace(t, grpcFilterRoute, old, new) }
	const (
		rewritePrefix = `path: {type: ReplacePrefixMatch, replacePrefixMatch: ""}`
		redirectFull  = "requestRedirect: {path: {type: ReplaceFullPath, replaceFullPath: /products}}"
		mirror25      = "requestMirror: {backendRef: {name: catalog-v2, port: 80}, percent: 25}"
		lastRewrite   = "    - type: URLRewrite\n      urlRewrite: {hostname: catalog}\n"
	)
	tests := []struct {
		desc string
		doc  string
		want []string
	}{
		// ResponseHeaderModifier: as RequestHeaderModifier.
		{"response header set twice", http("set: [{name: cache-control, value: no-store}]", "set: [{name: cache-control, value: a}, {name: Cache-Control, value: b}]"),
			[]string{`spec.rules[2].filters[1].responseHeaderModifier.set[1].name: header "Cache-Control" is given twice`}},
		{"response header name", http("remove: [server]", `remove: ["x y"]`),
			[]string{`spec.rules[2].filters[1].responseHeaderModifier.remove[0]: "x y" is not a header name`}},
		{"two response header modifiers", http("        remove: [server]\n", "        remove: [server]\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {remove: [via]}\n"),
			[]string{"spec.rules[2].filters[2]: a rule has at most one ResponseHeaderModifier filter"}},
		{"response header modifier without settings", http("    - type: ResponseHeaderModifier\n      responseHeaderModifier:\n        set: [{name: cache-control, value: no-store}]\n        add: [{name: x-served-by, value: catalog}]\n        remove: [server]\n", "    - type: ResponseHeaderModifier\n"),
			[]string{"spec.rules[2].filters[1].responseHeaderModifier: must be set for type ResponseHeaderModifier"}},
		// RequestRedirect.
		{"redirect status code", http("statusCode: 301", "statusCode: 304"),
			[]string{"spec.rules[0].filters[0].requestRedirect.statusCode: 304: want 301, 302, 303, 307 or 308"}},
		{"redirect scheme", http("scheme: https", "scheme: ftp"),
			[]string{`spec.rules[0].filters[0].requestRedirect.scheme: "ftp": want http or https`}},
		{"redirect hostname", http("hostname: shop.example.com", "hostname: Shop.example.com:80"),
			[]string{`spec.rules[0].filters[0].requestRedirect.hostname: "Shop.example.com:80"`}},
		{"redirect wildcard hostname", http("hostname: shop.example.com", `hostname: "*.example.com"`),
			[]string{`spec.rules[0].filters[0].requestRedirect.hostname: "*.example.com"`}},
		{"redirect port", http("port: 8443", "port: 0"),
			[]string{"spec.rules[0].filters[0].requestRedirect.port: must be between 1 and 65535, got 0"}},
		{"redirect with backends", http(redirectFull+"\n", redirectFull+"\n    backendRefs: [{name: catalog-v1, port: 80}]\n"),
			[]string{"spec.rules[1].backendRefs: must be empty in a rule with a RequestRedirect filter"}},
		{"redirect prefix on exact match", http("{type: PathPrefix, value: /old/}", "{type: Exact, value: /old/}"),
			[]string{"spec.rules[0].filters[0].requestRedirect.path.type: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match other than /, but matches[0].path is of type Exact"}},
		{"redirect full path relative", http("replaceFullPath: /products", "replaceFullPath: products"),
			[]string{`spec.rules[1].filters[0].requestRedirect.path.replaceFullPath: "products": a path starts with /`}},
		{"redirect full path missing", http("{type: ReplaceFullPath, replaceFullPath: /products}", "{type: ReplaceFullPath}"),
			[]string{"spec.rules[1].filters[0].requestRedirect.path.replaceFullPath: must be set for type ReplaceFullPath"}},
		{"redirect path of the other type", http("{type: ReplaceFullPath, replaceFullPath: /products}", "{type: ReplaceFullPath, replaceFullPath: /products, replacePrefixMatch: /p}"),
			[]string{"spec.rules[1].filters[0].requestRedirect.path.replacePrefixMatch: set in a path modifier of type ReplaceFullPath"}},
		{"redirect path type", http("{type: ReplaceFullPath, replaceFullPath: /products}", "{type: ReplaceQuery, replaceFullPath: /products}"),
			[]string{`spec.rules[1].filters[0].requestRedirect.path.type: "ReplaceQuery": want ReplaceFullPath or ReplacePrefixMatch`}},
		{"two redirects", http("    - type: RequestRedirect\n      "+redirectFull, "    - type: RequestRedirect\n      "+redirectFull+"\n    - {type: RequestRedirect, requestRedirect: {statusCode: 308}}"),
			[]string{"spec.rules[1].filters[1]: a rule has at most one RequestRedirect filter"}},
		{"redirect and rewrite", http("    - type: RequestRedirect\n      "+redirectFull, "    - type: RequestRedirect\n      "+redirectFull+"\n    - {type: URLRewrite, urlRewrite: {hostname: catalog}}"),
			[]string{"spec.rules[1].filters[1]: a rule may have a RequestRedirect or a URLRewrite filter, not both (filters[0] is the other)"}},
		{"redirect settings in a rewrite", http("      urlRewrite: {hostname: catalog}", "      urlRewrite: {hostname: catalog}\n      requestRedirect: {statusCode: 301}"),
			[]string{"spec.rules[4].filters[1].requestRedirect: set in a filter of type URLRewrite"}},
		// URLRewrite.
		{"rewrite prefix on exact match", http("[{path: {value: /api/v1}}]", "[{path: {value: /api/v1}}, {path: {type: Exact, value: /api}}]"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs every match of the rule to be a PathPrefix match other than /, but matches[1].path is of type Exact"}},
		{"rewrite prefix on regex match", http("[{path: {value: /api/v1}}]", "[{path: {type: RegularExpression, value: \"/api/v[0-9]\"}}]"),
			[]string{"matches[0].path is of type RegularExpression"}},
		{"rewrite prefix on header match", http("[{path: {value: /api/v1}}]", "[{path: {value: /api/v1}}, {headers: [{name: x-api, value: v1}]}]"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.type", "matches[1] has no path match (PathPrefix / by default)"}},
		{"rewrite prefix on prefix /", http("[{path: {value: /api/v1}}]", "[{path: {value: /}}]"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.type", "matches[0].path is PathPrefix /"}},
		{"rewrite prefix without matches", http(lastRewrite, "    - type: URLRewrite\n      urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /v1}}\n"),
			[]string{"spec.rules[4].filters[1].urlRewrite.path.type", "the rule has no matches (PathPrefix / by default)"}},
		{"rewrite prefix missing", http(rewritePrefix, "path: {type: ReplacePrefixMatch}"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.replacePrefixMatch: must be set for type ReplacePrefixMatch"}},
		{"rewrite prefix unnormalized", http(rewritePrefix, "path: {type: ReplacePrefixMatch, replacePrefixMatch: /a/../b}"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.replacePrefixMatch", "must be normalized"}},
		{"rewrite path too long", http(rewritePrefix, "path: {type: ReplaceFullPath, replaceFullPath: /"+strings.Repeat("a", 1024)+"}"),
			[]string{"spec.rules[2].filters[0].urlRewrite.path.replaceFullPath: longer than 1024 bytes"}},
		{"rewrite hostname", http("hostname: catalog.demo", "hostname: catalog_demo"),
			[]string{`spec.rules[2].filters[0].urlRewrite.hostname: "catalog_demo"`}},
		{"two rewrites", http(lastRewrite, lastRewrite+lastRewrite),
			[]string{"spec.rules[4].filters[2]: a rule has at most one URLRewrite filter"}},
		// RequestMirror.
		{"two mirrors", http(mirror25, mirror25+"\n    - {type: RequestMirror, requestMirror: {backendRef: {name: catalog, port: 80}}}"),
			[]string{"spec.rules[2].filters[3]: a rule has at most one RequestMirror filter in weft (filters[2] is one)"}},
		{"mirror percent too large", http("percent: 25", "percent: 101"),
			[]string{"spec.rules[2].filters[2].requestMirror.percent: 101: want 0 to 100"}},
		{"mirror percent and fraction", http("percent: 25", "percent: 25, fraction: {numerator: 1}"),
			[]string{"spec.rules[2].filters[2].requestMirror: set percent or fraction, not both"}},
		{"mirror fraction over 1", http("{numerator: 1, denominator: 8}", "{numerator: 9, denominator: 8}"),
			[]string{"spec.rules[3].filters[1].requestMirror.fraction.numerator: 9: want 0 to the denominator, 8"}},
		{"mirror fraction denominator", http("{numerator: 1, denominator: 8}", "{numerator: 0, denominator: 0}"),
			[]string{"spec.rules[3].filters[1].requestMirror.fraction.denominator: 0: must be at least 1"}},
		{"mirror without port", http("{name: catalog-v2, port: 80}, percent", "{name: catalog-v2}, percent"),
			[]string{"spec.rules[2].filters[2].requestMirror.backendRef.port: must be set"}},
		{"mirror kind", http("{name: catalog-v2, port: 80}, percent", "{kind: ServiceImport, name: catalog-v2, port: 80}, percent"),
			[]string{`spec.rules[2].filters[2].requestMirror.backendRef.kind: "ServiceImport": weft routes to Services only`}},
		{"mirror namespace", http("{name: catalog-v2, port: 80}, percent", "{name: catalog-v2, namespace: shop, port: 80}, percent"),
			[]string{`spec.rules[2].filters[2].requestMirror.backendRef.namespace: "shop"`}},
		{"mirror name", http("{name: catalog-v2, port: 80}, percent", "{name: Catalog, port: 80}, percent"),
			[]string{"spec.rules[2].filters.requestMirror.backendRef.name"}},
		{"mirror weight", http("{name: catalog-v2, port: 80}, percent", "{name: catalog-v2, port: 80, weight: 1}, percent"),
			[]string{`unknown field "spec.rules[2].filters[2].requestMirror.backendRef.weight"`}},
		// Still refused.
		{"cors", http(lastRewrite, lastRewrite+"    - {type: CORS, cors: {allowOrigins: [\"https://shop.example.com\"]}}\n"),
			[]string{`spec.rules[4].filters[2].type: "CORS": not supported yet (weft supports RequestHeaderModifier, ResponseHeaderModifier, RequestRedirect, URLRewrite, RequestMirror)`}},
		{"external auth", http(lastRewrite, lastRewrite+"    - {type: ExternalAuth}\n"),
			[]string{`spec.rules[4].filters[2].type: "ExternalAuth": not supported yet`}},
		{"backend mirror filter", http("backendRefs: [{name: catalog-v1, port: 80}]\n    timeouts: {request: 0s", "backendRefs: [{name: catalog-v1, port: 80, filters: [{type: RequestMirror, requestMirror: {backendRef: {name: catalog-v2, port: 80}}}]}]\n    timeouts: {request: 0s"),
			[]string{"spec.rules[4].backendRefs[0].filters[0]: RequestMirror: filters on a backendRef are not supported yet"}},
		// GRPCRoute.
		{"grpc rewrite", grpc("    - type: ResponseHeaderModifier", "    - {type: URLRewrite}\n    - type: ResponseHeaderModifier"),
			[]string{`spec.rules[0].filters[0].type: "URLRewrite": not supported yet (weft supports RequestHeaderModifier, ResponseHeaderModifier, RequestMirror)`}},
		{"grpc mirror fraction", grpc("{numerator: 3}", "{numerator: 101}"),
			[]string{"spec.rules[0].filters[1].requestMirror.fraction.numerator: 101: want 0 to the denominator, 100"}},
		{"grpc response header", grpc("remove: [x-internal]", `remove: [x-internal, X-Internal]`),
			[]string{`spec.rules[0].filters[0].responseHeaderModifier.remove[1]: header "X-Internal" is given twice`}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			decodeOneInvalid(t, tc.doc, tc.want)
		})
	}
}
