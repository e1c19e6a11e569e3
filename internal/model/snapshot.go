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
	services  map[Ref]*ServiceState
	workloads map[Ref]*Workload
	policies  map[PolicyKey]Policy
	// authz holds the resolved authorization of each workload some policy
	// selects.
	authz map[Ref]*Authz
	// admitted holds the version of each route in force, rejected why
	// the stored version of a route is not (see admit.go).
	admitted   map[PolicyKey]admission
	rejected   map[PolicyKey]error
	superseded chan struct{}
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		services:   map[Ref]*ServiceState{},
		workloads:  map[Ref]*Workload{},
		policies:   map[PolicyKey]Policy{},
		authz:      map[Ref]*Authz{},
		admitted:   map[PolicyKey]admission{},
		rejected:   map[PolicyKey]error{},
		superseded: make(chan struct{}),
	}
}

// Superseded is closed when a newer snapshot is published.
func (s *Snapshot) Superseded() <-chan struct{} { return s.superseded }

// Service returns a service's state.
func (s *Snapshot) Service(r Ref) (*ServiceState, bool) {
	st, ok := s.services[r]
	return st, ok
}

// Workload returns a workload.
func (s *Snapshot) Workload(r Ref) (*Workload, bool) {
	w, ok := s.workloads[r]
	return w, ok
}

// Services returns every service state, sorted by namespace and name.
func (s *Snapshot) Services() []*ServiceState {
	out := slices.Collect(maps.Values(s.services))
	slices.SortFunc(out, func(a, b *ServiceState) int { return CompareRefs(a.Service.Ref, b.Service.Ref) })
	return out
}

// Workloads returns every workload, sorted by namespace and name.
func (s *Snapshot) Workloads() []*Workload {
	out := slices.Collect(maps.Values(s.workloads))
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

// Authz returns a workload's inbound authorization: nil when no policy
// selects it, which allows every identity of the mesh. The pointer stays
// Policy returns a policy object by key.
func (s *Snapshot) Policy(k PolicyKey) (Policy, bool) {
	p, ok := s.policies[k]
	return p, ok
}

// the same from snapshot to snapshot while the authorization does.
func (s *Snapshot) Authz(r Ref) *Authz { return s.authz[r] }

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
