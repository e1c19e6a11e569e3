package model

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Changes is one batch of edits from one source.
type Changes struct {
	PutServices     []*Service
	DeleteServices  []Ref
	PutWorkloads    []*Workload
	DeleteWorkloads []Ref
	PutPolicies     []Policy
	DeletePolicies  []PolicyKey
}

// Store holds the mesh's objects, each owned by the source that put it,
// and publishes a new Snapshot for each batch of changes. Endpoints are
// rebuilt incrementally: a workload change touches only the services of
// its namespace, and only those whose selector matches it.
type Store struct {
	mu        sync.Mutex
	snap      atomic.Pointer[Snapshot]
	services  map[Ref]owned[*Service]
	workloads map[Ref]owned[*Workload]
	policies  map[PolicyKey]owned[Policy]
	// endpoints of each service, by endpoint ID.
	endpoints   map[Ref]map[string]*Endpoint
	nsServices  map[string]map[Ref]bool
	nsWorkloads map[string]map[Ref]bool
	nsPolicies  map[string]map[PolicyKey]bool
	meshMTLS    MTLSMode
}

type owned[T any] struct {
	source string
	obj    T
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithMeshMTLS sets the mesh-wide mTLS mode of workloads whose services
// ask for none; the default is strict.
func WithMeshMTLS(mode MTLSMode) StoreOption { return func(s *Store) { s.meshMTLS = mode } }

// NewStore returns an empty store.
func NewStore(opts ...StoreOption) *Store {
	s := &Store{
		services:    map[Ref]owned[*Service]{},
		workloads:   map[Ref]owned[*Workload]{},
		policies:    map[PolicyKey]owned[Policy]{},
		endpoints:   map[Ref]map[string]*Endpoint{},
		nsServices:  map[string]map[Ref]bool{},
		nsWorkloads: map[string]map[Ref]bool{},
		nsPolicies:  map[string]map[PolicyKey]bool{},
	}
	for _, o := range opts {
		o(s)
	}
	s.snap.Store(emptySnapshot())
	return s
}

// Snapshot returns the current snapshot.
func (s *Store) Snapshot() *Snapshot { return s.snap.Load() }

// ErrOwnedElsewhere is returned for an object another source already put.
var ErrOwnedElsewhere = errors.New("already declared by another source")

// WorkloadOwner returns which source put the workload, if any.
func (s *Store) WorkloadOwner(r Ref) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.workloads[r]
	return o.source, ok
}

// Apply makes the changes of one source and publishes a snapshot if
// anything changed. Objects must be valid. An object another source owns is
// left as it is and reported in the returned error; the rest still apply.
func (s *Store) Apply(source string, c Changes) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.snap.Load()
	next := &Snapshot{
		Version:    old.Version + 1,
		services:   old.services,
		workloads:  old.workloads,
		policies:   old.policies,
		authz:      old.authz,
		admitted:   old.admitted,
		rejected:   old.rejected,
		superseded: make(chan struct{}),
	}
	b := &batch{Store: s, next: next, dirty: map[Ref]bool{}, authzNamespaces: map[string]bool{}, authzWorkloads: map[Ref]bool{},
		serviceNamespaces: map[string]bool{}, routeNamespaces: map[string]bool{},
		nextServices: newCOW(&next.services), nextWorkloads: newCOW(&next.workloads), nextAuthz: newCOW(&next.authz)}
	var errs []error
	for _, r := range c.DeleteServices {
		errs = append(errs, b.deleteService(source, r))
	}
	for _, r := range c.DeleteWorkloads {
		errs = append(errs, b.deleteWorkload(source, r))
	}
	for _, svc := range c.PutServices {
		errs = append(errs, b.putService(source, svc))
	}
	for _, w := range c.PutWorkloads {
		errs = append(errs, b.putWorkload(source, w))
	}
	for _, k := range c.DeletePolicies {
		errs = append(errs, b.deletePolicy(source, k))
	}
	for _, p := range c.PutPolicies {
		errs = append(errs, b.putPolicy(source, p))
	}
	if b.changed {
		b.publish()
		s.snap.Store(next)
		close(old.superseded)
	}
	return errors.Join(errs...)
}

// batch is one Apply in progress. It copies the snapshot's maps on first
// write, so the published snapshot is never modified.
type batch struct {
	*Store
	next           *Snapshot
	nextServices   *cowNamespaces[*ServiceState]
	nextWorkloads  *cowNamespaces[*Workload]
	nextAuthz      *cowNamespaces[*Authz]
	copiedPolicies bool
	changed        bool
	dirty          map[Ref]bool // services whose endpoints or definition changed
	// Whose authorization to resolve again: every workload of a namespace
	// whose policies or services changed, and workloads that changed.
	authzNamespaces map[string]bool
	authzWorkloads  map[Ref]bool
	// serviceNamespaces hold routes in force or traffic policies that
	// changed: their services' states are resolved again.
	serviceNamespaces map[string]bool
	// routeNamespaces hold routes, or what routes name, that changed:
	// their routes are admitted again.
	routeNamespaces map[string]bool
}

func (b *batch) conflict(kind string, r Ref, owner string) error {
	return &ObjectError{Kind: kind, Ref: r, Err: fmt.Errorf("%w (%s)", ErrOwnedElsewhere, owner)}
}

func (b *batch) deleteService(source string, r Ref) error {
	o, ok := b.services[r]
	if !ok {
		return nil
	}
	if o.source != source {
		return b.conflict("Service", r, o.source)
	}
	delete(b.services, r)
	delete(b.endpoints, r)
	delete(b.nsServices[r.Namespace], r)
	b.nextServices.del(r)
	delete(b.dirty, r)
	b.authzNamespaces[r.Namespace] = true
	b.routeNamespaces[r.Namespace] = true
	b.changed = true
	return nil
}

func (b *batch) putService(source string, svc *Service) error {
	r := svc.Ref
	o, ok := b.services[r]
	if ok && o.source != source {
		return b.conflict("Service", r, o.source)
	}
	if ok && o.obj.Equal(svc) {
		return nil
	}
	b.services[r] = owned[*Service]{source, svc}
	addIndex(b.nsServices, r)
	eps := map[string]*Endpoint{}
	for wr := range b.nsWorkloads[r.Namespace] {
		if ep := endpointFor(svc, b.workloads[wr].obj); ep != nil {
			eps[ep.ID] = ep
		}
	}
	b.endpoints[r] = eps
	b.dirty[r] = true
	b.authzNamespaces[r.Namespace] = true
	if !ok {
		b.routeNamespaces[r.Namespace] = true
	}
	b.changed = true
	return nil
}

func (b *batch) deleteWorkload(source string, r Ref) error {
	o, ok := b.workloads[r]
	if !ok {
		return nil
	}
	if o.source != source {
		return b.conflict("Workload", r, o.source)
	}
	delete(b.workloads, r)
	delete(b.nsWorkloads[r.Namespace], r)
	b.nextWorkloads.del(r)
	b.reindexWorkload(r, nil)
	b.authzWorkloads[r] = true
	b.changed = true
	return nil
}

func (b *batch) putWorkload(source string, w *Workload) error {
	r := w.Ref
	o, ok := b.workloads[r]
	if ok && o.source != source {
		return b.conflict("Workload", r, o.source)
	}
	if ok && o.obj.Equal(w) {
		return nil
	}
	b.workloads[r] = owned[*Workload]{source, w}
	addIndex(b.nsWorkloads, r)
	b.nextWorkloads.set(r, w)
	b.reindexWorkload(r, w)
	b.authzWorkloads[r] = true
	b.changed = true
	return nil
}

// reindexWorkload updates the workload's endpoint in each service of its
// namespace; w is nil when the workload is gone.
func (b *batch) reindexWorkload(r Ref, w *Workload) {
	id := r.String()
	for sr := range b.nsServices[r.Namespace] {
		eps := b.endpoints[sr]
		old, had := eps[id]
		var ep *Endpoint
		if w != nil {
			ep = endpointFor(b.services[sr].obj, w)
		}
		switch {
		case ep != nil && (!had || !old.Equal(ep)):
			eps[id] = ep
			b.dirty[sr] = true
		case ep == nil && had:
			delete(eps, id)
			b.dirty[sr] = true
		}
	}
}

func (b *batch) deletePolicy(source string, k PolicyKey) error {
	o, ok := b.policies[k]
	if !ok {
		return nil
	}
	if o.source != source {
		return b.conflict(k.Kind, k.Ref, o.source)
	}
	delete(b.policies, k)
	delete(b.nsPolicies[k.Ref.Namespace], k)
	b.writePolicies()
	delete(b.next.policies, k)
	b.policyChanged(k)
	b.changed = true
	return nil
}

func (b *batch) putPolicy(source string, p Policy) error {
	k := p.Key()
	o, ok := b.policies[k]
	if ok && o.source != source {
		return b.conflict(k.Kind, k.Ref, o.source)
	}
	if ok && o.obj.EqualPolicy(p) {
		return nil
	}
	b.policies[k] = owned[Policy]{source, p}
	if b.nsPolicies[k.Ref.Namespace] == nil {
		b.nsPolicies[k.Ref.Namespace] = map[PolicyKey]bool{}
	}
	b.nsPolicies[k.Ref.Namespace][k] = true
	b.writePolicies()
	b.next.policies[k] = p
	b.policyChanged(k)
	b.changed = true
	return nil
}

// policyChanged marks what a changed policy object may change.
func (b *batch) policyChanged(k PolicyKey) {
	switch k.Kind {
	case KindHTTPRoute, KindGRPCRoute, KindTrafficSplit:
		b.routeNamespaces[k.Ref.Namespace] = true
	case KindRetryPolicy, KindFaultPolicy, KindCircuitBreakerPolicy:
		b.serviceNamespaces[k.Ref.Namespace] = true
	case KindHTTPRouteGroup:
		b.routeNamespaces[k.Ref.Namespace] = true
		b.authzNamespaces[k.Ref.Namespace] = true
	default:
		b.authzNamespaces[k.Ref.Namespace] = true
	}
}

// nsPolicyList returns the policy objects of namespace ns, sorted by key.
func (b *batch) nsPolicyList(ns string) []Policy {
	keys := slices.SortedFunc(maps.Keys(b.nsPolicies[ns]), comparePolicyKeys)
	out := make([]Policy, len(keys))
	for i, k := range keys {
		out[i] = b.policies[k].obj
	}
	return out
}

// routesInForce returns the admitted version of each route among a
// namespace's policies.
func (b *batch) routesInForce(policies []Policy) []*Route {
	var out []*Route
	for _, p := range policies {
		if a, ok := b.next.admitted[p.Key()]; ok {
			out = append(out, a.inForce)
		}
	}
	return out
}

// publish makes a new ServiceState for each service that changed, and
// resolves again the authorization of each workload that may see a
// different one.
func (b *batch) publish() {
	b.publishAuthz()
	for ns := range b.routeNamespaces {
		if b.admitRoutes(ns) {
			b.serviceNamespaces[ns] = true
		}
	}
	for ns := range b.serviceNamespaces {
		for r := range b.nsServices[ns] {
			b.dirty[r] = true
		}
	}
	if len(b.dirty) == 0 {
		return
	}
	policies := map[string][]Policy{}
	for r := range b.dirty {
		if _, ok := policies[r.Namespace]; !ok {
			policies[r.Namespace] = b.nsPolicyList(r.Namespace)
		}
		ps := policies[r.Namespace]
		eps := slices.Collect(maps.Values(b.endpoints[r]))
		slices.SortFunc(eps, func(a, c *Endpoint) int { return cmp.Compare(a.ID, c.ID) })
		b.nextServices.set(r, &ServiceState{Service: b.services[r].obj, Endpoints: eps, Routes: resolveRoutes(r, b.routesInForce(ps)),
			Traffic: resolveTraffic(r.Name, ps), Version: b.next.Version})
	}
}

func (b *batch) publishAuthz() {
	if len(b.authzNamespaces) == 0 && len(b.authzWorkloads) == 0 {
		return
	}
	// One scope per namespace: resolving does not change it, and making
	// it for each workload was most of a large batch's work.
	scopes := map[string]authzScope{}
	resolve := func(r Ref) {
		old, _ := b.next.authz.get(r)
		o, ok := b.workloads[r]
		if !ok {
			b.nextAuthz.del(r)
			return
		}
		scope, ok := scopes[r.Namespace]
		if !ok {
			scope = b.authzScope(r.Namespace)
			scopes[r.Namespace] = scope
		}
		cur := resolveAuthz(o.obj, scope)
		switch {
		case cur == nil:
			b.nextAuthz.del(r)
		case !old.Equal(cur):
			b.nextAuthz.set(r, cur)
		}
	}
	for ns := range b.authzNamespaces {
		for r := range b.nsWorkloads[ns] {
			resolve(r)
		}
	}
	for r := range b.authzWorkloads {
		if !b.authzNamespaces[r.Namespace] {
			resolve(r)
		}
	}
}

// authzScope gathers what authorization in namespace ns resolves against.
func (b *batch) authzScope(ns string) authzScope {
	scope := authzScope{
		policies: b.nsPolicyList(ns),
		services: map[string]*Service{},
		lookup:   func(k PolicyKey) Policy { return b.policies[k].obj },
		meshMTLS: b.meshMTLS,
	}
	for r := range b.nsServices[ns] {
		scope.services[r.Name] = b.services[r].obj
	}
	return scope
}

func (b *batch) writePolicies() {
	if !b.copiedPolicies {
		b.next.policies = maps.Clone(b.next.policies)
		b.copiedPolicies = true
	}
}

func addIndex(idx map[string]map[Ref]bool, r Ref) {
	if idx[r.Namespace] == nil {
		idx[r.Namespace] = map[Ref]bool{}
	}
	idx[r.Namespace][r] = true
}

// endpointFor returns the endpoint a workload gives a service, or nil when
// the service does not select it (or list it, see Service.Members) or the
// workload serves none of its ports.
func endpointFor(svc *Service, w *Workload) *Endpoint {
	if w.Ref.Namespace != svc.Ref.Namespace {
		return nil
	}
	if svc.Members != nil {
		if !svc.Members[w.Ref.Name] {
			return nil
		}
	} else if w.NotReady || !svc.Selects(w.Labels) {
		return nil
	}
	targets := make(map[uint32]uint32, len(svc.Ports))
	for _, sp := range svc.Ports {
		if tp, ok := w.targetPort(sp); ok {
			targets[sp.Port] = tp
		}
	}
	if len(targets) == 0 {
		return nil
	}
	return &Endpoint{
		ID:             w.Ref.String(),
		Workload:       w.Ref,
		Address:        w.Address,
		ProxyPort:      w.InboundPort,
		ServiceAccount: w.Identity(),
		Labels:         w.Labels,
		TargetPorts:    targets,
	}
}
