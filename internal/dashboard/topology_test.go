package dashboard

import (
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/source/files"
	"github.com/weftmesh/weft/internal/stats"
)

func demoTopology(t *testing.T, withStats bool) Topology {
	t.Helper()
	docs := demoDocs()
	var sum *stats.Summary
	if withStats {
		s := docs["/api/v1/stats?window=30s"].(stats.Summary)
		sum = &s
	}
	connected := map[string]bool{"demo/web-0": true}
	return buildTopology(docs["/api/v1/services"].([]controlplane.Service), docs["/api/v1/workloads"].([]controlplane.Workload), connected, sum)
}

func nodeByID(t *testing.T, topo Topology, id string) Node {
	t.Helper()
	for _, n := range topo.Nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no node %s in %+v", id, topo.Nodes)
	return Node{}
}

func TestTopologyOfTheDemo(t *testing.T) {
	topo := demoTopology(t, false)
	// Layers by call depth: loadgen -> web -> catalog, audit -> stock; a
	// version's service is drawn within catalog, at its depth.
	for id, want := range map[string]struct {
		kind, within string
		layer        int
		workloads    []string
	}{
		"demo/loadgen-0":  {"workload", "", 0, []string{"demo/loadgen-0"}},
		"demo/web":        {"service", "", 1, []string{"demo/web-0"}},
		"demo/catalog":    {"service", "", 2, []string{"demo/catalog-v1-0", "demo/catalog-v2-0"}},
		"demo/catalog-v1": {"service", "demo/catalog", 2, nil},
		"demo/catalog-v2": {"service", "demo/catalog", 2, nil},
		"demo/audit":      {"service", "", 2, []string{"demo/audit-0"}},
		"demo/stock":      {"service", "", 3, []string{"demo/stock-0"}},
	} {
		n := nodeByID(t, topo, id)
		var wls []string
		for _, w := range n.Workloads {
			wls = append(wls, w.ID)
		}
		if n.Kind != want.kind || n.Within != want.within || n.Layer != want.layer || !slices.Equal(wls, want.workloads) {
			t.Errorf("node %s: kind %q within %q layer %d workloads %v; want %q, %q, %d, %v",
				id, n.Kind, n.Within, n.Layer, wls, want.kind, want.within, want.layer, want.workloads)
		}
	}
	if len(topo.Nodes) != 7 {
		t.Errorf("%d nodes, want 7", len(topo.Nodes))
	}
	if w := nodeByID(t, topo, "demo/web").Workloads[0]; !w.Connected {
		t.Errorf("web-0 not connected: %+v", w)
	}
	if w := nodeByID(t, topo, "demo/stock").Workloads[0]; w.Connected {
		t.Errorf("stock-0 connected: %+v", w)
	}
	var edges []string
	for _, e := range topo.Edges {
		edges = append(edges, e.ID+" from "+e.From)
		if e.Stats != nil || e.MTLS != nil {
			t.Errorf("edge %s has stats without a summary: %+v", e.ID, e)
		}
	}
	want := []string{
		"demo/catalog-v1-0->demo/stock from demo/catalog",
		"demo/catalog-v2-0->demo/stock from demo/catalog",
		"demo/loadgen-0->demo/web from demo/loadgen-0",
		"demo/web-0->demo/audit from demo/web",
		"demo/web-0->demo/catalog from demo/web",
	}
	if !slices.Equal(edges, want) {
		t.Errorf("edges\n%s\nwant\n%s", strings.Join(edges, "\n"), strings.Join(want, "\n"))
	}
}

func TestTopologyStats(t *testing.T) {
	topo := demoTopology(t, true)
	byID := map[string]Edge{}
	for _, e := range topo.Edges {
		byID[e.ID] = e
		if e.Stats == nil {
			t.Errorf("edge %s: no stats with a summary; want zeros when it had no calls", e.ID)
		}
	}
	e := byID["demo/loadgen-0->demo/web"]
	if e.Stats == nil || e.Stats.RPS != 5 || *e.Stats.SuccessRate != 0.98 || e.Stats.LatencyMs.P99 != 12 || e.MTLS == nil || !*e.MTLS {
		t.Errorf("loadgen -> web: %+v", e)
	}
	if e := byID["demo/web-0->demo/catalog"]; e.Stats == nil || e.Stats.Requests != 0 || e.MTLS != nil {
		t.Errorf("web -> catalog, no calls in the window: %+v", e)
	}
	// Calls a route sent to a backend service show as an edge of their own,
	// to the version's service drawn within catalog.
	if e, ok := byID["demo/web-0->demo/catalog-v2"]; !ok || e.From != "demo/web" || len(e.Ports) != 0 || e.Stats.RPS != 1 {
		t.Errorf("web -> catalog-v2 (a route's backend): %+v, present %v", e, ok)
	}
	if _, ok := byID["demo/ghost-0->demo/web"]; ok {
		t.Error("an edge from a workload the mesh does not know is drawn")
	}
	if n := nodeByID(t, topo, "demo/web"); n.Stats == nil || n.Stats.RPS != 5 {
		t.Errorf("web's stats: %+v", n.Stats)
	}
	if n := nodeByID(t, topo, "demo/stock"); n.Stats == nil || n.Stats.Requests != 0 || n.Workloads[0].Stats == nil {
		t.Errorf("stock, no calls: %+v", n)
	}
	// The backend edge does not change the layers: catalog-v2 is catalog's.
	if n := nodeByID(t, topo, "demo/catalog"); n.Layer != 2 {
		t.Errorf("catalog's layer %d, want 2", n.Layer)
	}
}

func TestTopologyLayersSurviveCycles(t *testing.T) {
	svc := func(name string, workloads ...string) controlplane.Service {
		s := controlplane.Service{Name: name}
		for _, w := range workloads {
			s.Endpoints = append(s.Endpoints, controlplane.Endpoint{Workload: w})
		}
		return s
	}
	wl := func(name string, outbound ...string) controlplane.Workload {
		w := controlplane.Workload{Name: name}
		for _, o := range outbound {
			w.Outbound = append(w.Outbound, controlplane.Outbound{Service: o, Port: 80})
		}
		return w
	}
	// client -> a -> b -> c -> a (a cycle), and b calls itself; d and e
	// call each other and nothing calls them.
	topo := buildTopology(
		[]controlplane.Service{svc("x/a", "x/a-0"), svc("x/b", "x/b-0"), svc("x/c", "x/c-0"), svc("x/d", "x/d-0"), svc("x/e", "x/e-0"), svc("x/empty")},
		[]controlplane.Workload{wl("x/client-0", "x/a"), wl("x/a-0", "x/b"), wl("x/b-0", "x/c", "x/b"), wl("x/c-0", "x/a"), wl("x/d-0", "x/e"), wl("x/e-0", "x/d")},
		nil, nil)
	layers := map[string]int{}
	for _, n := range topo.Nodes {
		layers[n.ID] = n.Layer
	}
	want := map[string]int{"x/client-0": 0, "x/a": 1, "x/b": 2, "x/c": 3, "x/d": 0, "x/e": 1, "x/empty": 0}
	for id, l := range want {
		if layers[id] != l {
			t.Errorf("layer of %s: %d, want %d (all: %v)", id, layers[id], l, layers)
		}
	}
	if n := nodeByID(t, topo, "x/empty"); n.Within != "" || n.Endpoints != 0 {
		t.Errorf("a service without endpoints: %+v, want a box of its own", n)
	}
	if len(topo.Edges) != 7 {
		t.Errorf("%d edges, want 7 (the self call too): %+v", len(topo.Edges), topo.Edges)
	}
}

func TestProblems(t *testing.T) {
	m := &files.Status{Problems: []files.Problem{
		{File: "routes.yaml", Object: "httproute demo/typo", Message: "routes.yaml: httproute demo/typo: backendRefs[0].name: service demo/catalog-v3 does not exist"},
		{File: "svc.yaml", Object: "service demo/stock", Message: "svc.yaml: service demo/stock: port 70000 out of range"},
		{File: "junk.yaml", Message: "junk.yaml: not YAML"},
	}}
	routes := []controlplane.Route{
		{Kind: "HTTPRoute", Namespace: "demo", Name: "typo", Parents: []string{"catalog"},
			Status: []controlplane.RouteStatus{{Parent: "catalog"}}, Rejected: "backendRefs[0].name: service demo/catalog-v3 does not exist"},
		{Kind: "HTTPRoute", Namespace: "demo", Name: "registered", Parents: []string{"web:80"},
			Status: []controlplane.RouteStatus{{Parent: "web:80"}}, Rejected: "a match another route has"},
		{Kind: "TrafficSplit", Namespace: "demo", Name: "split", Parents: []string{"catalog"},
			Status: []controlplane.RouteStatus{{Parent: "catalog", Reasons: []string{"HTTPRoute demo/canary addresses the same service"}}}},
		{Kind: "HTTPRoute", Namespace: "demo", Name: "canary", Parents: []string{"catalog:80"},
			Status: []controlplane.RouteStatus{{Parent: "catalog:80", InForce: true, Reasons: []string{"backend service demo/gone no longer exists"}}}},
		{Kind: "HTTPRoute", Namespace: "demo", Name: "fine", Parents: []string{"web"}, Status: []controlplane.RouteStatus{{Parent: "web", InForce: true}}},
	}
	policies := []controlplane.Policy{
		{Kind: "RetryPolicy", Namespace: "demo", Name: "b", Status: &controlplane.PolicyStatus{Reason: "RetryPolicy demo/a already applies"}},
		{Kind: "RetryPolicy", Namespace: "demo", Name: "a", Status: &controlplane.PolicyStatus{InForce: true}},
		{Kind: "AuthorizationPolicy", Namespace: "demo", Name: "z"},
	}
	var got []string
	for _, p := range problems(m, routes, policies) {
		got = append(got, p.Kind+" | "+p.Object+" | "+p.File+" | "+strings.Join(p.Services, ",")+" | "+p.Message)
	}
	want := []string{
		// The rejected route from a file shows once, as the file's problem,
		// with the route's service.
		"manifest | httproute demo/typo | routes.yaml | demo/catalog | routes.yaml: httproute demo/typo: backendRefs[0].name: service demo/catalog-v3 does not exist",
		"manifest | service demo/stock | svc.yaml | demo/stock | svc.yaml: service demo/stock: port 70000 out of range",
		"manifest |  | junk.yaml |  | junk.yaml: not YAML",
		"route | HTTPRoute demo/registered |  | demo/web | rejected: a match another route has",
		"route | TrafficSplit demo/split |  | demo/catalog | not in force on catalog: HTTPRoute demo/canary addresses the same service",
		"route | HTTPRoute demo/canary |  | demo/catalog | in force on catalog:80, but: backend service demo/gone no longer exists",
		"policy | RetryPolicy demo/b |  |  | not in force: RetryPolicy demo/a already applies",
	}
	if !slices.Equal(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := problems(nil, nil, nil); p == nil || len(p) != 0 {
		t.Errorf("no problems: %#v, want an empty list", p)
	}
}
