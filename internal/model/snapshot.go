package model

import (
	"cmp"
	"maps"
	"slices"
)

// ServiceState is a service and the endpoints serving it, as of one
// snapshot. It is immutable: a change makes a new ServiceState, so a
// pointer comparison tells whether a service changed between snapshots.
type ServiceState struct {
	Service *Service
	// Endpoints, sorted by ID.
	Endpoints []*Endpoint
	// Routes are the rules of the routes attached to the service; nil
	// when none is, and requests go to the service's own endpoints.
	Routes *RouteTable
	// Traffic is what the retry and fault policies attached to the service
	// ask of its callers; nil when none is.
	Traffic *TrafficPolicy
	// Version is the snapshot version in which this state was made.
	Version uint64
}

// Endpoint returns the endpoint with the given ID.
func (s *ServiceState) Endpoint(id string) (*Endpoint, bool) {
	i, found := slices.BinarySearchFunc(s.Endpoints, id, func(e *Endpoint, id string) int {
		return cmp.Compare(e.ID, id)
	})
	if !found {
		return nil, false
	}
	return s.Endpoints[i], true
}

// Snapshot is one immutable, versioned state of the whole mesh. Readers
// hold it as long as they like; the Store makes a new one for each change.
type Snapshot struct {
	Version   uint64
	services  byNamespace[*ServiceState]
	workloads byNamespace[*Workload]
	policies  map[PolicyKey]Policy
	// authz holds the resolved authorization of each workload some policy
	// selects.
	authz byNamespace[*Authz]
	// admitted holds the version of each route in force, rejected why
	// the stored version of a route is not (see admit.go).
	admitted   map[PolicyKey]admission
	rejected   map[PolicyKey]error
	superseded chan struct{}
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		services:   byNamespace[*ServiceState]{},
		workloads:  byNamespace[*Workload]{},
		policies:   map[PolicyKey]Policy{},
		authz:      byNamespace[*Authz]{},
		admitted:   map[PolicyKey]admission{},
		rejected:   map[PolicyKey]error{},
		superseded: make(chan struct{}),
	}
}

// Superseded is closed when a newer snapshot is published.
func (s *Snapshot) Superseded() <-chan struct{} { return s.superseded }

// Service returns a service's state.
func (s *Snapshot) Service(r Ref) (*ServiceState, bool) {
	return s.services.get(r)
}

// Workload returns a workload.
func (s *Snapshot) Workload(r Ref) (*Workload, bool) {
	return s.workloads.get(r)
}

// Services returns every service state, sorted by namespace and name.
func (s *Snapshot) Services() []*ServiceState {
	out := s.services.values()
	slices.SortFunc(out, func(a, b *ServiceState) int { return CompareRefs(a.Service.Ref, b.Service.Ref) })
	return out
}

// Workloads returns every workload, sorted by namespace and name.
func (s *Snapshot) Workloads() []*Workload {
	out := s.workloads.values()
	slices.SortFunc(out, func(a, b *Workload) int { return CompareRefs(a.Ref, b.Ref) })
	return out
}

// Policies returns every policy object, sorted by kind, namespace and name.
func (s *Snapshot) Policies() []Policy {
	keys := slices.SortedFunc(maps.Keys(s.policies), comparePolicyKeys)
	out := make([]Policy, len(keys))
	for i, k := range keys {
		out[i] = s.policies[k]
	}
	return out
}

// Policy returns a policy object by key.
func (s *Snapshot) Policy(k PolicyKey) (Policy, bool) {
	p, ok := s.policies[k]
	return p, ok
}

// Authz returns a workload's inbound authorization: nil when no policy
// selects it, which allows every identity of the mesh. The pointer stays
// the same from snapshot to snapshot while the authorization does.
func (s *Snapshot) Authz(r Ref) *Authz {
	a, _ := s.authz.get(r)
	return a
}

// CompareRefs orders refs by namespace, then name.
func CompareRefs(a, b Ref) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
}

// ProxyConfig is what one proxy knows of the mesh: its own workload and
// the state of each service it subscribed to.
type ProxyConfig struct {
	Version  uint64
	Workload *Workload
	Services map[Ref]*ServiceState
	// Authz is the workload's inbound authorization; nil allows every
	// identity of the mesh.
	Authz *Authz
}

// byNamespace holds one kind of a snapshot's objects, by namespace, so
// that a change copies the map of its namespace and the small top-level
// one, not a map of every object in the mesh: at 100,000 workloads the
// whole copy was most of the work of an endpoint change (see
// docs/benchmarks-control-plane.md). A published byNamespace, and each
// of its namespaces' maps, is never modified, so a namespace whose
// *nsMap is the same in two snapshots did not change between them.
type byNamespace[V comparable] map[string]*nsMap[V]

type nsMap[V comparable] struct{ m map[Ref]V }

func (m byNamespace[V]) get(r Ref) (V, bool) {
	if inner := m[r.Namespace]; inner != nil {
		v, ok := inner.m[r]
		return v, ok
	}
	var zero V
	return zero, false
}

func (m byNamespace[V]) values() []V {
	n := 0
	for _, inner := range m {
		n += len(inner.m)
	}
	out := make([]V, 0, n)
	for _, inner := range m {
		for _, v := range inner.m {
			out = append(out, v)
		}
	}
	return out
}

// changedRefs returns the objects added, removed or replaced from a to b.
// Namespaces whose maps are the same are skipped whole.
func changedRefs[V comparable](a, b byNamespace[V]) []Ref {
	var out []Ref
	for ns, bm := range b {
		am := a[ns]
		if am == bm {
			continue
		}
		var amm map[Ref]V
		if am != nil {
			amm = am.m
		}
		for r, v := range bm.m {
			if w, ok := amm[r]; !ok || w != v {
				out = append(out, r)
			}
		}
		for r := range amm {
			if _, ok := bm.m[r]; !ok {
				out = append(out, r)
			}
		}
	}
	for ns, am := range a {
		if _, ok := b[ns]; !ok {
			for r := range am.m {
				out = append(out, r)
			}
		}
	}
	return out
}

// ServicesChanged returns the services whose state is not the same in s
// as in prev: added, removed, or a new ServiceState. Its work is that of
// the namespaces that changed, not of the whole mesh, so a watcher need
// not compare every service it cares about at every snapshot.
func (s *Snapshot) ServicesChanged(prev *Snapshot) []Ref {
	return changedRefs(prev.services, s.services)
}

// WorkloadsChanged returns the workloads that are not the same in s as in
// prev, or whose authorization is not (a workload may be listed twice).
func (s *Snapshot) WorkloadsChanged(prev *Snapshot) []Ref {
	return append(changedRefs(prev.workloads, s.workloads), changedRefs(prev.authz, s.authz)...)
}

// cowNamespaces edits a byNamespace copied from a published snapshot:
// it copies the top-level map on the first write, and each namespace's
// map on the first write to that namespace.
type cowNamespaces[V comparable] struct {
	m      *byNamespace[V]
	top    bool
	copied map[string]bool
}

func newCOW[V comparable](m *byNamespace[V]) *cowNamespaces[V] {
	return &cowNamespaces[V]{m: m, copied: map[string]bool{}}
}

// writable returns namespace ns's map, copied for this batch.
func (c *cowNamespaces[V]) writable(ns string) map[Ref]V {
	if !c.top {
		*c.m = maps.Clone(*c.m)
		c.top = true
	}
	if !c.copied[ns] {
		inner := &nsMap[V]{m: map[Ref]V{}}
		if old := (*c.m)[ns]; old != nil {
			inner.m = maps.Clone(old.m)
		}
		(*c.m)[ns] = inner
		c.copied[ns] = true
	}
	return (*c.m)[ns].m
}

func (c *cowNamespaces[V]) set(r Ref, v V) { c.writable(r.Namespace)[r] = v }

func (c *cowNamespaces[V]) del(r Ref) {
	if _, ok := c.m.get(r); !ok {
		return
	}
	inner := c.writable(r.Namespace)
	delete(inner, r)
	if len(inner) == 0 {
		delete(*c.m, r.Namespace)
		delete(c.copied, r.Namespace)
	}
}
