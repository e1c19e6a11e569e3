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
  proxy: {inboundPort: 20111, adminPort: 20211}
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
	if w == nil || w.Ref != (model.Ref{Namespace: "demo", Name: "catalog-v1-0"}) || w.InboundPort != 20111 || w.AdminPort != 20211 {
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
	f.Add([]byte(goodService))
	f.Add([]byte(goodWorkload))
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
			default:
				t.Fatalf("object %s has no content", o.Key)
			}
			if err != nil {
				t.Fatalf("Decode returned an invalid object %s: %v", o.Key, err)
			}
		}
	})
}
