package manifest

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

const goodService = `
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: demo}
spec:
  selector: {app: catalog}
  ports:
  - name: http
    port: 80
    targetPort: http
    appProtocol: http
  - name: grpc-admin
    port: 9090
    targetPort: 9091
`

const goodWorkload = `
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata:
  name: catalog-v1-0
  namespace: demo
  labels: {app: catalog, version: v1}
spec:
  serviceAccount: catalog
  address: 127.0.0.1
  ports:
  - {name: http, port: 20011, protocol: http}
  proxy: {inboundPort: 20111, adminPort: 20211, accessLog: true}
  outbound:
  - {service: stock, port: 9090, localPort: 20311}
  - {service: other/ledger, port: 7000, localPort: 20312}
`

func TestDecodeValid(t *testing.T) {
	d := Decode("demo.yaml", []byte(goodService+"\n---\n# a comment only\n---\n"+goodWorkload))
	if err := d.Err(); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(d.Objects) != 2 {
		t.Fatalf("got %d objects, want 2", len(d.Objects))
	}
	svc := d.Objects[0].Service
	want := []model.ServicePort{
		{Name: "http", Port: 80, TargetPortName: "http", Protocol: model.ProtocolHTTP1},
		{Name: "grpc-admin", Port: 9090, TargetPort: 9091, Protocol: model.ProtocolGRPC},
	}
	if svc == nil || len(svc.Ports) != 2 || svc.Ports[0] != want[0] || svc.Ports[1] != want[1] {
		t.Errorf("service ports = %+v, want %+v", svc, want)
	}
	w := d.Objects[1].Workload
	if w == nil || w.Ref != (model.Ref{Namespace: "demo", Name: "catalog-v1-0"}) || w.InboundPort != 20111 || w.AdminPort != 20211 || !w.AccessLog {
		t.Fatalf("workload = %+v", w)
	}
	if got := w.Outbound[1].Service; got != (model.Ref{Namespace: "other", Name: "ledger"}) {
		t.Errorf("outbound[1].service = %v, want other/ledger", got)
	}
	if got := w.Outbound[0].Service; got != (model.Ref{Namespace: "demo", Name: "stock"}) {
		t.Errorf("outbound[0].service = %v, want demo/stock", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		desc string
		doc  string
		// invalid: the object is known but not valid; otherwise broken.
		invalid bool
		want    []string
	}{
		{"not yaml", "kind: [", false, []string{"bad.yaml: document 1"}},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}", false, []string{"apiVersion and kind must be set"}},
		{"no name", "apiVersion: v1\nkind: Service\nmetadata: {}", false, []string{"metadata.name must be set"}},
		{"unknown kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}", false, []string{"v1 ConfigMap: unsupported kind"}},
		{"port out of range", strings.Replace(goodService, "port: 80", "port: 70000", 1), true,
			[]string{"bad.yaml: service demo/catalog:", "spec.ports[0].port: must be between 1 and 65535"}},
		{"unknown field", strings.Replace(goodService, "selector:", "selectorr:", 1), true,
			[]string{"service demo/catalog", `unknown field "spec.selectorr"`}},
		{"bad mTLS mode", strings.Replace(goodService, "metadata: {name: catalog, namespace: demo}", "metadata: {name: catalog, namespace: demo, annotations: {weft.dev/mtls-mode: open}}", 1), true,
			[]string{"service demo/catalog", `metadata.annotations[weft.dev/mtls-mode]: "open": want strict or permissive`}},
		{"bad load balancer", strings.Replace(goodService, "metadata: {name: catalog, namespace: demo}", "metadata: {name: catalog, namespace: demo, annotations: {weft.dev/load-balancer: random}}", 1), true,
			[]string{"service demo/catalog", `metadata.annotations[weft.dev/load-balancer]: "random": want one of p2c, round-robin`}},
		{"bad app protocol", strings.Replace(goodService, "appProtocol: http", "appProtocol: smtp", 1), true,
			[]string{"spec.ports[0].appProtocol", `unknown protocol "smtp"`}},
		{"udp", strings.Replace(goodService, "targetPort: 9091", "targetPort: 9091\n    protocol: UDP", 1), true,
			[]string{"spec.ports[1].protocol: weft carries TCP only"}},
		{"bad name", strings.Replace(goodService, "catalog, namespace", "Catalog_1, namespace", 1), true,
			[]string{"service demo/Catalog_1", "metadata: name"}},
		{"bad address", strings.Replace(goodWorkload, "address: 127.0.0.1", "address: localhost", 1), true,
			[]string{"workload demo/catalog-v1-0", `spec.address: must be an IP address, got "localhost"`}},
		{"no inbound port", strings.Replace(goodWorkload, "inboundPort: 20111, ", "", 1), true,
			[]string{"spec.proxy.inboundPort: must be between 1 and 65535, got 0"}},
		{"bad outbound", strings.Replace(goodWorkload, "service: stock", "service: a/b/c", 1), true,
			[]string{"spec.outbound[0].service"}},
		{"duplicate local port", strings.Replace(goodWorkload, "localPort: 20312", "localPort: 20311", 1), true,
			[]string{"spec.outbound[1].localPort: duplicate local port 20311"}},
		{"bad workload protocol", strings.Replace(goodWorkload, "protocol: http}", "protocol: quic}", 1), true,
			[]string{"spec.ports[0].protocol"}},
		{"declared twice", goodService + "\n---\n" + goodService, false, []string{"declared twice"}},
		{"traffic target in two versions", goodTrafficTarget + "\n---\n" + strings.Replace(goodTrafficTarget, "v1alpha3", "v1alpha2", 1), false,
			[]string{"traffictarget demo/web-to-catalog: declared twice"}},
		{"workload of another group", strings.Replace(goodWorkload, "weft.dev", "weft.io", 1), true,
			[]string{"workload demo/catalog-v1-0", `apiVersion: "weft.io/v1alpha1": weft reads Workload as weft.dev/v1alpha1`}},
		{"old traffic target", strings.Replace(goodTrafficTarget, "v1alpha3", "v1alpha1", 1), true,
			[]string{"traffictarget demo/web-to-catalog", `apiVersion: "access.smi-spec.io/v1alpha1": weft reads TrafficTarget as access.smi-spec.io/v1alpha2 or access.smi-spec.io/v1alpha3`}},
		{"policy unknown field", strings.Replace(goodAuthorizationPolicy, "methods:", "method:", 1), true,
			[]string{"authorizationpolicy demo/catalog-readers", `unknown field "spec.rules[0].method"`}},
		{"policy selector expressions", strings.Replace(goodAuthorizationPolicy, "targetRef: {kind: Service, name: catalog}", "selector: {matchExpressions: []}", 1), true,
			[]string{`unknown field "spec.selector.matchExpressions"`}},
		{"policy target and selector", strings.Replace(goodAuthorizationPolicy, "rules:", "selector: {matchLabels: {app: catalog}}\n  rules:", 1), true,
			[]string{"spec.targetRef: name exactly one of"}},
		{"policy no target", strings.Replace(goodAuthorizationPolicy, "targetRef: {kind: Service, name: catalog}", "", 1), true,
			[]string{"spec.targetRef: name exactly one of"}},
		{"policy target kind", strings.Replace(goodAuthorizationPolicy, "kind: Service,", "kind: Deployment,", 1), true,
			[]string{`spec.targetRef.kind: "Deployment": want Service or ServiceAccount`}},
		{"policy target name", strings.Replace(goodAuthorizationPolicy, "name: catalog}", "name: \"\"}", 1), true,
			[]string{"spec.targetRef.name: must not be empty"}},
		{"policy action", strings.Replace(goodAuthorizationPolicy, "rules:", "action: Permit\n  rules:", 1), true,
			[]string{`spec.action: "Permit": want Allow or Deny`}},
		{"policy source", strings.Replace(goodAuthorizationPolicy, "serviceAccount: web", "serviceAccount: Web_1", 1), true,
			[]string{"spec.rules[0].from[0].serviceAccount"}},
		{"policy port", strings.Replace(goodAuthorizationPolicy, "ports: [8080]", "ports: [8080, -1]", 1), true,
			[]string{"spec.rules[0].ports[1]: must be between 1 and 65535, got -1"}},
		{"policy method", strings.Replace(goodAuthorizationPolicy, "[GET, HEAD]", "[GET, get]", 1), true,
			[]string{`spec.rules[0].methods[1]: "get": want an HTTP method`}},
		{"policy path type", strings.Replace(goodAuthorizationPolicy, "type: RegularExpression", "type: Glob", 1), true,
			[]string{`spec.rules[0].paths[1].type: "Glob"`}},
		{"policy relative path", strings.Replace(goodAuthorizationPolicy, "value: /products}", "value: products}", 1), true,
			[]string{`spec.rules[0].paths[0].value: "products": a path starts with /`}},
		{"policy header regex", strings.Replace(goodAuthorizationPolicy, `"^alice$"`, `"(alice"`, 1), true,
			[]string{"spec.rules[0].headers.x-user"}},
		{"policy header twice", strings.Replace(goodAuthorizationPolicy, `headers: {x-user: "^alice$"}`, `headers: {x-user: a, X-User: b}`, 1), true,
			[]string{`spec.rules[0].headers: header "x-user" is given twice`}},
		{"traffic target v1alpha3 port", strings.Replace(goodTrafficTarget, "name: catalog}", "name: catalog, port: 8080}", 1), true,
			[]string{"spec.destination.port: access.smi-spec.io/v1alpha3 has no destination port"}},
		{"traffic target v1alpha2 bad port", strings.NewReplacer("v1alpha3", "v1alpha2", "name: catalog}", "name: catalog, port: 0}").Replace(goodTrafficTarget), true,
			[]string{"spec.destination.port: must be between 1 and 65535, got 0"}},
		{"traffic target source port", strings.Replace(goodTrafficTarget, "name: web}", "name: web, port: 80}", 1), true,
			[]string{`unknown field "spec.sources[0].port"`}},
		{"traffic target source kind", strings.Replace(goodTrafficTarget, "{kind: ServiceAccount, name: web}", "{kind: Group, name: web}", 1), true,
			[]string{`spec.sources[0].kind: "Group": want ServiceAccount`}},
		{"traffic target destination kind", strings.Replace(goodTrafficTarget, "{kind: ServiceAccount, name: catalog}", "{name: catalog}", 1), true,
			[]string{`spec.destination.kind: "": want ServiceAccount`}},
		{"traffic target other namespace", strings.Replace(goodTrafficTarget, "name: catalog}", "name: catalog, namespace: shop}", 1), true,
			[]string{`spec.destination.namespace: "shop": a TrafficTarget grants access to service accounts of its own namespace`}},
		{"traffic target rule kind", strings.Replace(goodTrafficTarget, "kind: TCPRoute", "kind: UDPRoute", 1), true,
			[]string{`spec.rules[1].kind: "UDPRoute": want HTTPRouteGroup or TCPRoute`}},
		{"traffic target no sources", strings.Replace(goodTrafficTarget, "  - {kind: ServiceAccount, name: web}\n  - {kind: ServiceAccount, name: prometheus, namespace: monitoring}\n", "", 1), true,
			[]string{"spec.sources: name at least one source service account"}},
		{"route group headers twice", strings.Replace(goodHTTPRouteGroup, `headers: {user-agent: ".*Android.*"}`, "headers: [{user-agent: a}, {User-Agent: b}]", 1), true,
			[]string{`spec.matches[1].headers: header "User-Agent" is given twice`}},
		{"route group headers not a map", strings.Replace(goodHTTPRouteGroup, `headers: {user-agent: ".*Android.*"}`, "headers: 5", 1), true,
			[]string{"httproutegroup demo/catalog-routes", "spec.matches.headers"}},
		{"route group match names", strings.Replace(goodHTTPRouteGroup, "name: android", "name: read", 1), true,
			[]string{`spec.matches[1].name: "read" is used by an earlier match`}},
		{"route group path regex", strings.Replace(goodHTTPRouteGroup, "pathRegex: /products.*", "pathRegex: /products(", 1), true,
			[]string{"spec.matches[0].pathRegex"}},
		{"tcp route v1alpha3 matches", strings.Replace(goodTCPRoute, "v1alpha4", "v1alpha3", 1), true,
			[]string{"tcproute demo/catalog-port", "spec.matches: a specs.smi-spec.io/v1alpha3 TCPRoute has no matches"}},
		{"tcp route port", strings.Replace(goodTCPRoute, "8443", "70000", 1), true,
			[]string{"spec.matches.ports[1]: must be between 1 and 65535, got 70000"}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			d := Decode("bad.yaml", []byte(tc.doc))
			err := d.Err()
			if err == nil {
				t.Fatal("Decode accepted it")
			}
			if got := len(d.Invalid) > 0; got != tc.invalid {
				t.Errorf("invalid = %v, want %v (err: %v)", got, tc.invalid, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestServicePortProtocolFromName(t *testing.T) {
	doc := strings.Replace(goodService, "    appProtocol: http\n", "", 1)
	doc = strings.Replace(doc, "name: http\n", "name: http2-web\n", 1)
	d := Decode("s.yaml", []byte(doc))
	if err := d.Err(); err != nil {
		t.Fatal(err)
	}
	if got := d.Objects[0].Service.Ports[0].Protocol; got != model.ProtocolHTTP2 {
		t.Errorf("protocol from name prefix = %q, want http2", got)
	}
}

func FuzzDecode(f *testing.F) {
	for _, doc := range []string{goodService, goodWorkload, goodAuthorizationPolicy, goodTrafficTarget, goodHTTPRouteGroup, goodTCPRoute,
		goodHTTPRoute, goodGRPCRoute, goodTrafficSplit, goodRetryPolicy, goodFaultPolicy, goodCircuitBreakerPolicy,
		goodRateLimitPolicy} {
		f.Add([]byte(doc))
	}
	f.Add([]byte(goodService + "\n---\n" + goodWorkload))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := Decode("fuzz.yaml", data)
		for _, o := range d.Objects {
			var err error
			switch {
			case o.Service != nil:
				err = o.Service.Validate()
			case o.Workload != nil:
				err = o.Workload.Validate()
			case o.Policy != nil:
				if k := o.Policy.Key(); k.Kind != o.Key.Kind || k.Ref != o.Key.Ref {
					t.Fatalf("object %s holds policy %s", o.Key, k)
				}
				err = o.Policy.Validate()
			default:
				t.Fatalf("object %s has no content", o.Key)
			}
			if err != nil {
				t.Fatalf("Decode returned an invalid object %s: %v", o.Key, err)
			}
		}
	})
}
