package demo

import (
	"bytes"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// The manifest format the lead's decoder reads, as far as this test checks
// it; unknown fields fail the strict decode.
type (
	meta struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels,omitempty"`
	}
	header struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	serviceDoc struct {
		header   `json:",inline"`
		Metadata meta `json:"metadata"`
		Spec     struct {
			Selector map[string]string `json:"selector"`
			Ports    []servicePort     `json:"ports"`
		} `json:"spec"`
	}
	servicePort struct {
		Name        string `json:"name"`
		Port        int    `json:"port"`
		TargetPort  string `json:"targetPort"`
		AppProtocol string `json:"appProtocol"`
	}
	workloadPort struct {
		Name     string `json:"name"`
		Port     int    `json:"port"`
		Protocol string `json:"protocol"`
	}
	outboundDoc struct {
		Service   string `json:"service"`
		Port      int    `json:"port"`
		LocalPort int    `json:"localPort"`
	}
	workloadDoc struct {
		header   `json:",inline"`
		Metadata meta `json:"metadata"`
		Spec     struct {
			ServiceAccount string         `json:"serviceAccount"`
			Address        string         `json:"address"`
			Ports          []workloadPort `json:"ports"`
			Proxy          struct {
				InboundPort int `json:"inboundPort"`
				AdminPort   int `json:"adminPort"`
			} `json:"proxy"`
			Outbound []outboundDoc `json:"outbound"`
		} `json:"spec"`
	}
)

type decoded struct {
	services  map[string]serviceDoc
	workloads map[string]workloadDoc // by namespace/name
}

func decodeLayout(t *testing.T, l Layout) decoded {
	t.Helper()
	d := decoded{services: map[string]serviceDoc{}, workloads: map[string]workloadDoc{}}
	for file, b := range l.Manifests {
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var h header
			if err := yaml.Unmarshal(doc, &h); err != nil {
				t.Fatalf("%s doc %d: %v", file, i, err)
			}
			switch h.Kind {
			case "Service":
				var s serviceDoc
				if err := yaml.UnmarshalStrict(doc, &s); err != nil {
					t.Fatalf("%s doc %d: %v", file, i, err)
				}
				if h.APIVersion != "v1" {
					t.Errorf("%s service %s: apiVersion %q", file, s.Metadata.Name, h.APIVersion)
				}
				// A service's versions live beside it: catalog-v1 in catalog.yaml.
				if app := s.Spec.Selector["app"]; file != app+".yaml" || (s.Metadata.Name != app && s.Metadata.Name != app+"-"+s.Spec.Selector["version"]) {
					t.Errorf("service %s is in %s", s.Metadata.Name, file)
				}
				d.services[s.Metadata.Name] = s
			case "Workload":
				var w workloadDoc
				if err := yaml.UnmarshalStrict(doc, &w); err != nil {
					t.Fatalf("%s doc %d: %v", file, i, err)
				}
				if h.APIVersion != "weft.dev/v1alpha1" {
					t.Errorf("%s workload %s: apiVersion %q", file, w.Metadata.Name, h.APIVersion)
				}
				d.workloads[w.Metadata.Namespace+"/"+w.Metadata.Name] = w
			default:
				t.Fatalf("%s doc %d: kind %q", file, i, h.Kind)
			}
		}
	}
	return d
}

func TestLayoutManifests(t *testing.T) {
	for _, base := range []int{20000, 41000} {
		t.Run(strconv.Itoa(base), func(t *testing.T) {
			l := NewLayout(base)
			want := []string{"audit.yaml", "catalog.yaml", "loadgen.yaml", "stock.yaml", "web.yaml"}
			if got := slices.Sorted(maps.Keys(l.Manifests)); !slices.Equal(got, want) {
				t.Fatalf("files %v, want %v", got, want)
			}
			d := decodeLayout(t, l)
			if len(d.services) != 6 || len(d.workloads) != 6 {
				t.Fatalf("%d services, %d workloads; want 6 (catalog-v1 and catalog-v2 among them) and 6", len(d.services), len(d.workloads))
			}
			for _, v := range []string{"v1", "v2"} {
				if s := d.services["catalog-"+v]; s.Spec.Selector["version"] != v || s.Spec.Selector["app"] != "catalog" {
					t.Errorf("service catalog-%s selects %v", v, s.Spec.Selector)
				}
			}

			seen := map[int]string{}
			use := func(port int, what string) {
				t.Helper()
				if port < base || port >= base+PortSpan {
					t.Errorf("%s: port %d outside [%d, %d)", what, port, base, base+PortSpan)
				}
				if prev, ok := seen[port]; ok {
					t.Errorf("%s: port %d already used by %s", what, port, prev)
				}
				seen[port] = what
			}
			for ref, w := range d.workloads {
				if w.Metadata.Namespace != Namespace || w.Spec.Address != "127.0.0.1" || w.Spec.ServiceAccount == "" {
					t.Errorf("workload %s: %+v", ref, w)
				}
				for _, p := range w.Spec.Ports {
					use(p.Port, ref+" port "+p.Name)
				}
				use(w.Spec.Proxy.InboundPort, ref+" inbound")
				use(w.Spec.Proxy.AdminPort, ref+" admin")
				for _, o := range w.Spec.Outbound {
					use(o.LocalPort, ref+" outbound "+o.Service)
					s, ok := d.services[o.Service]
					if !ok || !slices.ContainsFunc(s.Spec.Ports, func(p servicePort) bool {
						return p.Port == o.Port
					}) {
						t.Errorf("workload %s: outbound to %s:%d, which no service has", ref, o.Service, o.Port)
					}
				}
			}
			for _, p := range l.Apps {
				if a := flagValue(p.Args, "--control-addr"); a != "" {
					use(portOf(t, a), p.Name+" control")
				}
			}

			// Every service selects a workload, whose port it targets.
			for name, s := range d.services {
				selected := 0
				for ref, w := range d.workloads {
					if !matches(s.Spec.Selector, w.Metadata.Labels) {
						continue
					}
					selected++
					for _, sp := range s.Spec.Ports {
						if !slices.ContainsFunc(w.Spec.Ports, func(p workloadPort) bool {
							return p.Name == sp.TargetPort
						}) {
							t.Errorf("service %s port %d targets %q, which workload %s lacks", name, sp.Port, sp.TargetPort, ref)
						}
					}
				}
				if selected == 0 {
					t.Errorf("service %s selects no workload", name)
				}
			}
			if v2 := d.workloads["demo/catalog-v2-0"]; len(v2.Spec.Ports) != 1 || v2.Spec.Ports[0].Protocol != "http2" ||
				v2.Metadata.Labels["version"] != "v2" {
				t.Errorf("catalog-v2-0: %+v, want one http2 port and version v2", v2)
			}
		})
	}
}

// TestLayoutApps checks each app listens on its workload's app port and
// calls its upstreams only at its own workload's outbound local ports.
func TestLayoutApps(t *testing.T) {
	l := NewLayout(30000)
	d := decodeLayout(t, l)
	if len(l.Apps) != len(d.workloads) {
		t.Fatalf("%d apps for %d workloads", len(l.Apps), len(d.workloads))
	}
	upstreamFlags := map[string]string{
		"--catalog-url": "catalog", "--audit-addr": "audit", "--stock-addr": "stock", "--target": "web",
	}
	for _, p := range l.Apps {
		t.Run(p.Name, func(t *testing.T) {
			w, ok := d.workloads[p.Workload]
			if !ok {
				t.Fatalf("workload %q not in the manifests", p.Workload)
			}
			if len(p.Args) < 2 || p.Args[0] != "demo" {
				t.Fatalf("args %q", p.Args)
			}
			if _, _, err := NewCommand().Find(p.Args[1:]); err != nil {
				t.Fatalf("args %q: %v", p.Args, err)
			}
			if listen := flagValue(p.Args, "--listen"); len(w.Spec.Ports) > 0 {
				if portOf(t, listen) != w.Spec.Ports[0].Port {
					t.Errorf("--listen %s, want workload port %d", listen, w.Spec.Ports[0].Port)
				}
			} else if listen != "" {
				t.Errorf("--listen %s for a workload with no port", listen)
			}
			used := 0
			for flag, svc := range upstreamFlags {
				v := flagValue(p.Args, flag)
				if v == "" {
					continue
				}
				i := slices.IndexFunc(w.Spec.Outbound, func(o outboundDoc) bool {
					return o.Service == svc
				})
				if i < 0 || portOf(t, v) != w.Spec.Outbound[i].LocalPort {
					t.Errorf("%s %s: not %s's outbound local port for %s", flag, v, p.Workload, svc)
				}
				used++
			}
			if used != len(w.Spec.Outbound) {
				t.Errorf("app uses %d upstreams, workload declares %d outbounds", used, len(w.Spec.Outbound))
			}
		})
	}
	if l.WebURL != "http://127.0.0.1:30010/" {
		t.Errorf("WebURL %q", l.WebURL)
	}
}

func matches(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func flagValue(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// portOf returns the port of "127.0.0.1:N" or a URL on 127.0.0.1.
func portOf(t *testing.T, addr string) int {
	t.Helper()
	if u, err := url.Parse(addr); err == nil && u.Host != "" {
		addr = u.Host
	}
	host, port, ok := strings.Cut(addr, ":")
	n, err := strconv.Atoi(port)
	if !ok || host != "127.0.0.1" || err != nil {
		t.Fatalf("address %q: want 127.0.0.1:port", addr)
	}
	return n
}
