package demo

import (
	"strconv"
)

// Namespace is where the demo's services and workloads live.
const Namespace = "demo"

// Port offsets from the layout's port base. Workload i (in the order of
// workloads below) gets app port base+10+i, proxy inbound base+100+i, proxy
// admin base+200+i, outbound local ports base+300+10*i+j for its j-th
// upstream, and (stock, audit) a fault control port base+400+i.
const (
	appOffset      = 10
	inboundOffset  = 100
	adminOffset    = 200
	outboundOffset = 300
	controlOffset  = 400
	// PortSpan is how many ports from the base the layout may use: all of
	// them are in [portBase, portBase+PortSpan).
	PortSpan = 500
)

// Process is one program `weft up --demo` starts.
type Process struct {
	Name string
	// Args follow the `weft` binary, e.g. ["demo", "serve", "web", ...].
	Args []string
	// Workload is "namespace/name" of the workload whose app this is; the
	// load generator is the app of the meshed workload demo/loadgen-0.
	Workload string
}

// Layout is the demo's mesh, as data.
type Layout struct {
	// Manifests maps a file name to its YAML: one file per service (the
	// Service and its Workloads) and loadgen.yaml.
	Manifests map[string][]byte
	// Apps are the demo's programs, upstreams before the ones calling them.
	Apps []Process
	// WebURL is web's front page on its app port, for a browser.
	WebURL string
}

type service struct {
	name, portName, appProtocol string
	port                        int
}

type outbound struct {
	service string
	port    int
}

type workload struct {
	name, app, version, serviceAccount string
	portName, protocol                 string // "" for no app port
	outbound                           []outbound
	control                            bool // serves --control-addr
}

var (
	webSvc     = service{name: "web", portName: "http", appProtocol: "http", port: 80}
	catalogSvc = service{name: "catalog", portName: "http", appProtocol: "http", port: 80}
	stockSvc   = service{name: "stock", portName: "grpc", appProtocol: "grpc", port: 9090}
	auditSvc   = service{name: "audit", portName: "tcp", appProtocol: "tcp", port: 7000}
)

// workloads in index order; the index fixes each one's ports.
var workloads = []workload{
	{name: "web-0", app: "web", serviceAccount: "web", portName: "http", protocol: "http",
		outbound: []outbound{{"catalog", catalogSvc.port}, {"audit", auditSvc.port}}},
	{name: "catalog-v1-0", app: "catalog", version: "v1", serviceAccount: "catalog", portName: "http", protocol: "http",
		outbound: []outbound{{"stock", stockSvc.port}}},
	{name: "catalog-v2-0", app: "catalog", version: "v2", serviceAccount: "catalog", portName: "http", protocol: "http2",
		outbound: []outbound{{"stock", stockSvc.port}}},
	{name: "stock-0", app: "stock", serviceAccount: "stock", portName: "grpc", protocol: "grpc", control: true},
	{name: "audit-0", app: "audit", serviceAccount: "audit", portName: "tcp", protocol: "tcp", control: true},
	{name: "loadgen-0", app: "loadgen", serviceAccount: "loadgen",
		outbound: []outbound{{"web", webSvc.port}}},
}

// ports are one workload's ports in a layout.
type ports struct {
	App, Inbound, Admin, Control int
	Outbound                     []int // by outbound index
}

func portsOf(base, i int) ports {
	p := ports{
		App:     base + appOffset + i,
		Inbound: base + inboundOffset + i,
		Admin:   base + adminOffset + i,
		Control: base + controlOffset + i,
	}
	for j := range workloads[i].outbound {
		p.Outbound = append(p.Outbound, base+outboundOffset+10*i+j)
	}
	return p
}

// NewLayout returns the demo's layout with every port in
// [portBase, portBase+PortSpan) on 127.0.0.1.
func NewLayout(portBase int) Layout {
	p := func(name string) ports { return portsOf(portBase, indexOf(name)) }
	addr := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	web, v1, v2, stock, audit, load := p("web-0"), p("catalog-v1-0"), p("catalog-v2-0"), p("stock-0"), p("audit-0"), p("loadgen-0")

	apps := []Process{
		{Name: "stock", Workload: ref("stock-0"), Args: []string{"demo", "serve", "stock",
			"--listen", addr(stock.App), "--control-addr", addr(stock.Control)}},
		{Name: "audit", Workload: ref("audit-0"), Args: []string{"demo", "serve", "audit",
			"--listen", addr(audit.App), "--control-addr", addr(audit.Control)}},
		{Name: "catalog-v1", Workload: ref("catalog-v1-0"), Args: []string{"demo", "serve", "catalog",
			"--listen", addr(v1.App), "--version", "v1", "--stock-addr", addr(v1.Outbound[0])}},
		{Name: "catalog-v2", Workload: ref("catalog-v2-0"), Args: []string{"demo", "serve", "catalog",
			"--listen", addr(v2.App), "--version", "v2", "--h2c", "--stock-addr", addr(v2.Outbound[0])}},
		{Name: "web", Workload: ref("web-0"), Args: []string{"demo", "serve", "web",
			"--listen", addr(web.App),
			"--catalog-url", "http://" + addr(web.Outbound[0]),
			"--audit-addr", addr(web.Outbound[1])}},
		{Name: "loadgen", Workload: ref("loadgen-0"), Args: []string{"demo", "load",
			"--target", "http://" + addr(load.Outbound[0]) + "/api/products"}},
	}
	files := map[string][]byte{
		"web.yaml":     manifest(portBase, &webSvc),
		"catalog.yaml": manifest(portBase, &catalogSvc),
		"stock.yaml":   manifest(portBase, &stockSvc),
		"audit.yaml":   manifest(portBase, &auditSvc),
		"loadgen.yaml": manifest(portBase, nil),
	}
	return Layout{Manifests: files, Apps: apps, WebURL: "http://" + addr(web.App) + "/"}
}

func ref(name string) string { return Namespace + "/" + name }

func indexOf(name string) int {
	for i, w := range workloads {
		if w.name == name {
			return i
		}
	}
	panic("demo: no workload " + name) // a typo in this file
}
