package dashboard

import (
	"cmp"
	"slices"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/stats"
)

// Topology is the graph the UI draws: services (and the workloads no
// service selects, such as a load generator) as nodes, and for each
// service a workload calls, an edge from that workload to the service.
type Topology struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

// Node is a box of the graph.
type Node struct {
	// ID is the service's or workload's namespace/name.
	ID string `json:"id"`
	// Kind is "service", or "workload" for a workload no service selects.
	Kind string `json:"kind"`
	// Layer is the node's call depth: 0 for nodes nobody calls, and one
	// more than its deepest caller for the others.
	Layer int `json:"layer"`
	// Within, for a service whose endpoints are some of another service's
	// (catalog-v1 of catalog), is that service: the UI draws it inside
	// the other's box, which is where its workloads are.
	Within string `json:"within,omitempty"`
	// Protocol is the service's first port's protocol.
	Protocol string `json:"protocol,omitempty"`
	// Endpoints counts a service's workloads.
	Endpoints int `json:"endpoints"`
	// Workloads are the workloads drawn in this box, each where its calls
	// start: a workload is drawn in the largest service selecting it.
	Workloads []NodeWorkload `json:"workloads"`
	// Stats are a service's signals as its callers saw them; nil without
	// stats.
	Stats *stats.Signals `json:"stats,omitempty"`
}

// NodeWorkload is a workload inside a node.
type NodeWorkload struct {
	ID string `json:"id"`
	// Connected says whether the workload's proxy has a stream open to the
	// control plane.
	Connected bool `json:"connected"`
	// Stats are the calls the workload's proxy took; nil without stats.
	Stats *stats.Signals `json:"stats,omitempty"`
}

// Edge is a workload calling a service.
type Edge struct {
	// ID is "source->target", e.g. "demo/web-0->demo/catalog".
	ID string `json:"id"`
	// Source is the calling workload; From the node it is drawn in.
	Source string `json:"source"`
	From   string `json:"from"`
	// Target is the called service.
	Target string `json:"target"`
	// Ports are the target's ports the source's outbound list names; none
	// for an edge seen only in traffic, such as the calls a route sends to
	// a backend service.
	Ports []uint32 `json:"ports"`
	// Stats are the source's calls to the target over the window; nil
	// without stats. With stats, an edge without calls has zero requests.
	Stats *stats.Signals `json:"stats,omitempty"`
	// MTLS says whether every call of the window went over mTLS; nil
	// without calls.
	MTLS *bool `json:"mtls"`
}

// buildTopology makes the graph from the services, each workload's
// outbound list, which workloads' proxies are connected, and the stats
// summary (nil when there is none yet).
func buildTopology(services []controlplane.Service, workloads []controlplane.Workload, connected map[string]bool, sum *stats.Summary) Topology {
	t := Topology{Nodes: []Node{}, Edges: []Edge{}}
	endpoints := map[string][]string{} // service -> workloads
	for _, s := range services {
		for _, e := range s.Endpoints {
			endpoints[s.Name] = appendOnce(endpoints[s.Name], e.Workload)
		}
	}
	// Largest services first, so a workload is drawn in its widest
	// service and a version's service inside it.
	order := slices.Clone(services)
	slices.SortStableFunc(order, func(a, b controlplane.Service) int {
		if c := cmp.Compare(len(endpoints[b.Name]), len(endpoints[a.Name])); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	home := map[string]string{}   // workload -> node
	within := map[string]string{} // service -> the service drawn around it
	for _, s := range order {
		eps := endpoints[s.Name]
		for _, o := range order {
			if o.Name != s.Name && within[o.Name] == "" && len(endpoints[o.Name]) > len(eps) && subset(eps, endpoints[o.Name]) {
				within[s.Name] = o.Name
				break
			}
		}
		if within[s.Name] != "" {
			continue
		}
		for _, w := range eps {
			if _, ok := home[w]; !ok {
				home[w] = s.Name
			}
		}
	}
	nodes := map[string]*Node{}
	var ids []string
	for _, s := range services {
		n := &Node{ID: s.Name, Kind: "service", Within: within[s.Name], Endpoints: len(endpoints[s.Name]), Workloads: []NodeWorkload{}}
		if len(s.Ports) > 0 {
			n.Protocol = s.Ports[0].Protocol
		}
		nodes[s.Name], ids = n, append(ids, s.Name)
	}
	for _, w := range workloads {
		if _, ok := home[w.Name]; ok {
			continue
		}
		if _, taken := nodes[w.Name]; taken {
			// A workload named like a service of its namespace: leave it
			// out rather than draw two boxes of one ID.
			continue
		}
		home[w.Name] = w.Name
		nodes[w.Name], ids = &Node{ID: w.Name, Kind: "workload", Workloads: []NodeWorkload{}}, append(ids, w.Name)
	}
	for _, w := range workloads {
		if n := nodes[home[w.Name]]; n != nil {
			n.Workloads = append(n.Workloads, NodeWorkload{ID: w.Name, Connected: connected[w.Name]})
		}
	}
	edges := map[string]*Edge{}
	var edgeIDs []string
	for _, w := range workloads {
		from, ok := home[w.Name]
		if !ok {
			continue
		}
		for _, o := range w.Outbound {
			id := w.Name + "->" + o.Service
			e := edges[id]
			if e == nil {
				e = &Edge{ID: id, Source: w.Name, From: from, Target: o.Service, Ports: []uint32{}}
				edges[id], edgeIDs = e, append(edgeIDs, id)
			}
			if !slices.Contains(e.Ports, o.Port) {
				e.Ports = append(e.Ports, o.Port)
			}
		}
	}
	if sum != nil {
		edgeIDs = addStats(sum, nodes, home, edges, edgeIDs)
	}
	layers(nodes, ids, edges, edgeIDs)
	slices.Sort(ids)
	for _, id := range ids {
		n := nodes[id]
		slices.SortFunc(n.Workloads, func(a, b NodeWorkload) int { return cmp.Compare(a.ID, b.ID) })
		t.Nodes = append(t.Nodes, *n)
	}
	slices.Sort(edgeIDs)
	for _, id := range edgeIDs {
		t.Edges = append(t.Edges, *edges[id])
	}
	return t
}

// addStats puts each row of the summary on its node, workload or edge, and
// adds the edges seen in traffic that no outbound list names (a route's
// backend services, a service's calls from a workload since removed from
// the outbound list) when both ends are in the graph. Every node and edge
// gets stats, zero when the window saw nothing of it, so the UI can tell
// "no calls" from "no data".
func addStats(sum *stats.Summary, nodes map[string]*Node, home map[string]string, edges map[string]*Edge, edgeIDs []string) []string {
	services := map[string]stats.Signals{}
	for _, s := range sum.Services {
		services[s.Name] = s.Signals
	}
	workloads := map[string]stats.Signals{}
	for _, w := range sum.Workloads {
		workloads[w.Name] = w.Signals
	}
	for _, n := range nodes {
		if n.Kind == "service" {
			sig := services[n.ID]
			n.Stats = &sig
		}
		for i := range n.Workloads {
			sig := workloads[n.Workloads[i].ID]
			n.Workloads[i].Stats = &sig
		}
	}
	for _, es := range sum.Edges {
		id := es.Source + "->" + es.Destination
		e := edges[id]
		if e == nil {
			from, ok := home[es.Source]
			if !ok || nodes[es.Destination] == nil || nodes[es.Destination].Kind != "service" {
				continue
			}
			e = &Edge{ID: id, Source: es.Source, From: from, Target: es.Destination, Ports: []uint32{}}
			edges[id], edgeIDs = e, append(edgeIDs, id)
		}
		sig := es.Signals
		e.Stats, e.MTLS = &sig, es.MTLS
	}
	for _, id := range edgeIDs {
		if e := edges[id]; e.Stats == nil {
			e.Stats = &stats.Signals{}
		}
	}
	return edgeIDs
}

// subset reports whether every one of a is in b; an empty a is in
// nothing, so a service without endpoints gets a box of its own.
func subset(a, b []string) bool {
	if len(a) == 0 {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// layers sets each node's Layer to its call depth, the longest chain of
// calls reaching it, on the graph of boxes (a service drawn within
// another counts as that one). Calls that close a cycle are left out of
// the depth, found by a depth-first walk from the nodes nobody calls and
// then from the rest, in name order so that the drawing is stable.
func layers(nodes map[string]*Node, ids []string, edges map[string]*Edge, edgeIDs []string) {
	box := func(id string) string {
		if n := nodes[id]; n != nil && n.Within != "" {
			return n.Within
		}
		return id
	}
	out := map[string][]string{}
	called := map[string]bool{}
	for _, id := range edgeIDs {
		e := edges[id]
		from, to := box(e.From), box(e.Target)
		if nodes[from] == nil || nodes[to] == nil || from == to || slices.Contains(out[from], to) {
			continue
		}
		out[from] = append(out[from], to)
		called[to] = true
	}
	for _, succ := range out {
		slices.Sort(succ)
	}
	sorted := slices.Sorted(slices.Values(ids))
	// Depth-first, keeping the calls along which no cycle closes, in
	// post-order: the reverse of that order is topological.
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	dag := map[string][]string{}
	var post []string
	var visit func(string)
	visit = func(n string) {
		state[n] = onPath
		for _, m := range out[n] {
			switch state[m] {
			case unseen:
				dag[n] = append(dag[n], m)
				visit(m)
			case done:
				dag[n] = append(dag[n], m)
			}
			// onPath: m calls back up the chain; a cycle, left out.
		}
		state[n] = done
		post = append(post, n)
	}
	for _, id := range sorted {
		if !called[id] {
			visit(id)
		}
	}
	// What is left is on cycles that nothing outside them calls.
	for _, id := range sorted {
		if state[id] == unseen {
			visit(id)
		}
	}
	depth := map[string]int{}
	for i := len(post) - 1; i >= 0; i-- {
		n := post[i]
		for _, m := range dag[n] {
			depth[m] = max(depth[m], depth[n]+1)
		}
	}
	for _, id := range ids {
		nodes[id].Layer = depth[box(id)]
	}
}
