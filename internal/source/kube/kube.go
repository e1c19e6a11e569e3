package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// SourceName is the owner name of this source's objects in the store.
const SourceName = "kube"

// NamespaceLabel, set to NamespaceEnabled on a Namespace, puts it in the
// mesh.
const (
	NamespaceLabel   = "weft.dev/inject"
	NamespaceEnabled = "enabled"
)

// PolicyResources are the route and policy kinds the source reads, each
// once the API server serves it (its CRD may come later).
var PolicyResources = []schema.GroupVersionResource{
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"},
	{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "grpcroutes"},
	{Group: "split.smi-spec.io", Version: "v1alpha4", Resource: "trafficsplits"},
	{Group: "specs.smi-spec.io", Version: "v1alpha4", Resource: "httproutegroups"},
	{Group: "specs.smi-spec.io", Version: "v1alpha4", Resource: "tcproutes"},
	// v1alpha2, not v1alpha3: only v1alpha2 has a destination port, and a
	// TrafficTarget limited to one port read as v1alpha3 would open every
	// port. weft's CRD stores v1alpha2.
	{Group: "access.smi-spec.io", Version: "v1alpha2", Resource: "traffictargets"},
	{Group: "weft.dev", Version: "v1alpha1", Resource: "authorizationpolicies"},
	{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"},
	{Group: "weft.dev", Version: "v1alpha1", Resource: "faultpolicies"},
	{Group: "weft.dev", Version: "v1alpha1", Resource: "circuitbreakerpolicies"},
	{Group: "weft.dev", Version: "v1alpha1", Resource: "ratelimitpolicies"},
}

// Options configure a Source.
type Options struct {
	Client  kubernetes.Interface
	Dynamic dynamic.Interface
	Store   *model.Store
	Logger  *slog.Logger
	// Debounce is how long a change waits for more before the model is
	// brought in step; default 100ms.
	Debounce time.Duration
	// Rediscover is how often the source looks for route and policy kinds
	// the server has come to serve, besides watching CRDs (which it may
	// not be allowed to); default 30s.
	Rediscover time.Duration
	// Resync is the informers' resync period; 0 is none.
	Resync time.Duration
}

// Problem is one object the source could not take into the model, or
// took in with something its user should know: a service account it
// names that does not exist, ready endpoints the mesh cannot reach.
type Problem struct {
	Object  string `json:"object"`
	Message string `json:"message"`
}

// Status is what the source last saw.
type Status struct {
	Objects  int       `json:"objects"`
	LastSync time.Time `json:"lastSync"`
	// Resources are the route and policy kinds being watched.
	Resources []string  `json:"resources"`
	Problems  []Problem `json:"problems"`
}

// Source keeps the model in step with an API server.
type Source struct {
	opts    Options
	factory informers.SharedInformerFactory
	dyn     dynamicinformer.DynamicSharedInformerFactory
	kick    chan struct{}
	synced  chan struct{}

	mu      sync.Mutex
	watched map[schema.GroupVersionResource]cache.GenericLister
	applied map[manifest.Key]manifest.Object
	status  Status
	// meshed and verdicts are what the last sync saw, for the status
	// writer; resynced is closed, and replaced, by each sync.
	meshed   map[string]bool
	verdicts map[manifest.Key]verdict
	resynced chan struct{}
}

// verdict is what a sync made of one object that has something to say.
type verdict struct {
	// invalid says why this version of the object is not in the model.
	invalid string
	// unresolved are the service accounts it names that do not exist.
	unresolved []string
}

// New returns a source; nothing is read until Run.
func New(opts Options) (*Source, error) {
	if opts.Client == nil || opts.Dynamic == nil || opts.Store == nil {
		return nil, errors.New("kube source: a client, a dynamic client and a store are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	if opts.Rediscover <= 0 {
		opts.Rediscover = 30 * time.Second
	}
	return &Source{
		opts:     opts,
		factory:  informers.NewSharedInformerFactory(opts.Client, opts.Resync),
		dyn:      dynamicinformer.NewDynamicSharedInformerFactory(opts.Dynamic, opts.Resync),
		kick:     make(chan struct{}, 1),
		synced:   make(chan struct{}),
		watched:  map[schema.GroupVersionResource]cache.GenericLister{},
		applied:  map[manifest.Key]manifest.Object{},
		resynced: make(chan struct{}),
	}, nil
}

// Synced is closed once the model holds everything the server had when
// the source started: the control plane serves proxies after that, so a
// restart never sends them a partial mesh.
func (s *Source) Synced() <-chan struct{} { return s.synced }

// NamespaceLabels returns the labels of a namespace as the source last
// saw them; nil when it does not know the namespace.
func (s *Source) NamespaceLabels(name string) map[string]string {
	ns, err := s.factory.Core().V1().Namespaces().Lister().Get(name)
	if err != nil {
		return nil
	}
	return ns.Labels
}

// Client is the client the source reads with, for what else the control
// plane asks of the same API server.
func (s *Source) Client() kubernetes.Interface { return s.opts.Client }

// Status returns what the last sync saw, and the routes it applied that
// the model does not admit now (a backend that does not exist, a match
// another route has), which can change between syncs.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Problems = slices.Clone(st.Problems)
	st.Resources = slices.Clone(st.Resources)
	snap := s.opts.Store.Snapshot()
	for _, pk := range snap.RejectedRoutes() {
		k := manifest.Key{Kind: pk.Kind, Ref: pk.Ref}
		if _, ok := s.applied[k]; ok {
			st.Problems = append(st.Problems, Problem{Object: k.String(), Message: snap.RouteRejection(pk).Error()})
		}
	}
	return st
}

// Run watches the server until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.poke() },
		UpdateFunc: func(any, any) { s.poke() },
		DeleteFunc: func(any) { s.poke() },
	}
	core := s.factory.Core().V1()
	for _, inf := range []cache.SharedIndexInformer{core.Namespaces().Informer(), core.Services().Informer(), core.Pods().Informer(),
		core.ServiceAccounts().Informer(), s.factory.Discovery().V1().EndpointSlices().Informer()} {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return fmt.Errorf("kube source: %w", err)
		}
	}
	crdChanged := make(chan struct{}, 1)
	crds, err := s.newCRDInformer(crdChanged)
	if err != nil {
		return fmt.Errorf("kube source: %w", err)
	}
	crdsDone := make(chan struct{})
	go func() {
		defer close(crdsDone)
		crds.Run(ctx.Done())
	}()
	defer func() { <-crdsDone }()
	s.factory.Start(ctx.Done())
	defer s.factory.Shutdown()
	defer s.dyn.Shutdown()
	if err := s.watchPolicies(ctx, handler); err != nil {
		s.opts.Logger.Warn("route and policy kinds not discovered; will try again", "error", err)
	}
	for typ, ok := range s.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("kube source: %v informer did not sync: %w", typ, ctx.Err())
		}
	}
	s.sync()
	close(s.synced)
	rediscover := time.NewTicker(s.opts.Rediscover)
	defer rediscover.Stop()
	discover := func() {
		if err := s.watchPolicies(ctx, handler); err != nil {
			s.opts.Logger.Warn("route and policy kinds not discovered", "error", err)
		}
	}
	// After a CRD change, look again every second while a CRD of a kind
	// weft reads is not watched, a few times: discovery lists a new CRD a
	// moment after it is established.
	var retry <-chan time.Time
	retries := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-rediscover.C:
			discover()
		case <-crdChanged:
			discover()
			retries = 0
			retry = time.After(time.Second)
		case <-retry:
			retry = nil
			if !s.unwatchedCRDs(crds.GetStore()) {
				continue
			}
			discover()
			if retries++; retries < crdRetries {
				retry = time.After(time.Second)
			}
		case <-s.kick:
			t := time.NewTimer(s.opts.Debounce)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			s.sync()
		}
	}
}

func (s *Source) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// watchPolicies starts an informer for each route and policy kind the
// server serves and the source does not watch yet, and waits for it.
func (s *Source) watchPolicies(ctx context.Context, handler cache.ResourceEventHandler) error {
	served := map[schema.GroupVersion][]string{}
	var errs []error
	for _, gvr := range PolicyResources {
		gv := gvr.GroupVersion()
		if _, ok := served[gv]; ok {
			continue
		}
		list, err := s.opts.Client.Discovery().ServerResourcesForGroupVersion(gv.String())
		if err != nil {
			served[gv] = nil // not served (yet): no CRD
			continue
		}
		for _, r := range list.APIResources {
			served[gv] = append(served[gv], r.Name)
		}
	}
	started := false
	for _, gvr := range PolicyResources {
		s.mu.Lock()
		_, watching := s.watched[gvr]
		s.mu.Unlock()
		if watching || !slices.Contains(served[gvr.GroupVersion()], gvr.Resource) {
			continue
		}
		inf := s.dyn.ForResource(gvr)
		if _, err := inf.Informer().AddEventHandler(handler); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", gvr, err))
			continue
		}
		s.mu.Lock()
		s.watched[gvr] = inf.Lister()
		s.status.Resources = append(s.status.Resources, gvr.Resource+"."+gvr.Group)
		s.mu.Unlock()
		started = true
	}
	if started {
		s.dyn.Start(ctx.Done())
		for gvr, ok := range s.dyn.WaitForCacheSync(ctx.Done()) {
			if !ok {
				errs = append(errs, fmt.Errorf("%s informer did not sync: %w", gvr, ctx.Err()))
			}
		}
		s.poke()
	}
	return errors.Join(errs...)
}

// sync brings the model in step with the informers' caches. An object
// that does not convert keeps the version last applied, if any, and is
// reported.
func (s *Source) sync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	core := s.factory.Core().V1()
	namespaces, _ := core.Namespaces().Lister().List(labels.Everything())
	pods, _ := core.Pods().Lister().List(labels.Everything())
	services, _ := core.Services().Lister().List(labels.Everything())
	endpointSlices, _ := s.factory.Discovery().V1().EndpointSlices().Lister().List(labels.Everything())
	serviceAccounts, _ := core.ServiceAccounts().Lister().List(labels.Everything())
	accounts := make(map[model.Ref]bool, len(serviceAccounts))
	for _, sa := range serviceAccounts {
		accounts[model.Ref{Namespace: sa.Namespace, Name: sa.Name}] = true
	}
	meshed := map[string]bool{}
	for _, ns := range namespaces {
		if ns.Labels[NamespaceLabel] == NamespaceEnabled {
			meshed[ns.Name] = true
		}
	}
	for _, p := range pods {
		if manifest.IsMeshedPod(p) {
			meshed[p.Namespace] = true
		}
	}

	want := map[manifest.Key]manifest.Object{}
	verdicts := map[manifest.Key]verdict{}
	var problems []Problem
	reject := func(k manifest.Key, err error) {
		problems = append(problems, Problem{Object: k.String(), Message: err.Error()})
		verdicts[k] = verdict{invalid: err.Error()}
		if old, ok := s.applied[k]; ok {
			want[k] = old
		}
	}
	workloads := map[model.Ref]bool{}
	byAddress := map[string]model.Ref{}
	for _, p := range pods {
		if !meshed[p.Namespace] || !manifest.IsMeshedPod(p) || !running(p) {
			continue
		}
		k := manifest.Key{Kind: manifest.KindWorkload, Ref: model.Ref{Namespace: p.Namespace, Name: p.Name}}
		if w, err := manifest.WorkloadFromPod(p); err != nil {
			reject(k, err)
		} else {
			want[k] = manifest.Object{Key: k, Workload: w}
		}
		if o, ok := want[k]; ok {
			workloads[k.Ref] = true
			byAddress[o.Workload.Address] = k.Ref
			// The API server admits no Pod whose account is missing, but
			// the account may go later: then no token of it passes a
			// TokenReview, and the proxy gets no certificate.
			if id := o.Workload.Identity(); !accounts[id] {
				problems = append(problems, Problem{Object: k.String(),
					Message: fmt.Sprintf("service account %s does not exist: its proxy cannot be certified", id)})
			}
		}
	}
	endpoints := readEndpointSlices(endpointSlices, meshed, workloads, byAddress)
	for _, svc := range services {
		if !meshed[svc.Namespace] {
			continue
		}
		k := manifest.Key{Kind: manifest.KindService, Ref: model.Ref{Namespace: svc.Namespace, Name: svc.Name}}
		m, err := manifest.ServiceFromV1(svc)
		if err != nil {
			reject(k, err)
			continue
		}
		// The EndpointSlices decide, not the selector: a Service without
		// slices (yet) has no endpoints.
		m.Members = map[string]bool{}
		if set := endpoints[k.Ref]; set != nil {
			m.Members = set.members
		}
		want[k] = manifest.Object{Key: k, Service: m}
		if msg := endpoints[k.Ref].problem(); msg != "" {
			problems = append(problems, Problem{Object: k.String(), Message: msg})
		}
	}
	for _, gvr := range slices.SortedFunc(maps.Keys(s.watched), func(a, b schema.GroupVersionResource) int {
		return strings.Compare(a.String(), b.String())
	}) {
		objs, _ := s.watched[gvr].List(labels.Everything())
		for _, o := range objs {
			u, ok := o.(*unstructured.Unstructured)
			if !ok || !meshed[u.GetNamespace()] {
				continue
			}
			s.decodePolicy(u, want, reject, verdicts, &problems)
		}
	}
	for k, o := range want {
		if o.Policy == nil {
			continue
		}
		if missing := missingAccounts(o.Policy, accounts); len(missing) > 0 {
			v := verdicts[k]
			v.unresolved = missing
			verdicts[k] = v
			problems = append(problems, Problem{Object: k.String(), Message: "names service accounts that do not exist: " + strings.Join(missing, ", ")})
		}
	}

	err := s.opts.Store.Apply(SourceName, manifest.Diff(s.applied, want))
	for _, e := range model.Unjoin(err) {
		if e == nil {
			continue
		}
		var oe *model.ObjectError
		if errors.As(e, &oe) {
			// Refused (another source owns it): tried again next sync.
			k := manifest.Key{Kind: oe.Kind, Ref: oe.Ref}
			delete(want, k)
			verdicts[k] = verdict{invalid: e.Error()}
		}
		problems = append(problems, Problem{Object: objectName(e), Message: e.Error()})
	}
	if len(problems) > len(s.status.Problems) {
		s.opts.Logger.Warn("Kubernetes objects not taken into the mesh", "problems", len(problems))
	}
	slices.SortFunc(problems, func(a, b Problem) int { return strings.Compare(a.Object, b.Object) })
	s.applied = want
	s.meshed = meshed
	s.verdicts = verdicts
	s.status.Objects = len(want)
	s.status.LastSync = time.Now()
	s.status.Problems = problems
	close(s.resynced)
	s.resynced = make(chan struct{})
}

// MeshNamespaces returns the namespaces in the mesh as the last sync saw
// them, sorted: those labelled to be, and those holding a meshed Pod in
// any phase (one `weft inject` made waits, unstarted, for what the mesh
// puts in its namespace); and a channel closed by the next sync.
func (s *Source) MeshNamespaces() ([]string, <-chan struct{}) {
	meshed, _, next := s.state()
	return slices.Sorted(maps.Keys(meshed)), next
}

// state returns what the last sync saw, and a channel closed by the next.
func (s *Source) state() (meshed map[string]bool, verdicts map[manifest.Key]verdict, next <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.meshed, s.verdicts, s.resynced
}

// listers returns the listers of the route and policy kinds watched.
func (s *Source) listers() map[schema.GroupVersionResource]cache.GenericLister {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.watched)
}

// decodePolicy converts a route or policy object with the manifest
// decoders, as if a manifest declared it: what the API server adds
// (status, managed fields) is left out, since the strict decoders refuse
// what weft does not read.
func (s *Source) decodePolicy(u *unstructured.Unstructured, want map[manifest.Key]manifest.Object, reject func(manifest.Key, error),
	verdicts map[manifest.Key]verdict, problems *[]Problem) {
	content := maps.Clone(u.UnstructuredContent())
	delete(content, "status")
	if meta, ok := content["metadata"].(map[string]any); ok {
		content["metadata"] = map[string]any{"name": meta["name"], "namespace": meta["namespace"],
			"labels": meta["labels"], "annotations": meta["annotations"]}
	}
	data, err := json.Marshal(content)
	where := fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
	key := manifest.Key{Kind: u.GetKind(), Ref: model.Ref{Namespace: u.GetNamespace(), Name: u.GetName()}}
	if err != nil {
		*problems = append(*problems, Problem{Object: where, Message: err.Error()})
		verdicts[key] = verdict{invalid: err.Error()}
		return
	}
	d := manifest.Decode(where, data)
	for _, o := range d.Objects {
		want[o.Key] = o
	}
	for _, inv := range d.Invalid {
		reject(manifest.Key{Kind: inv.Kind, Ref: inv.Ref}, inv)
	}
	for _, b := range d.Broken {
		*problems = append(*problems, Problem{Object: where, Message: b.Error()})
		verdicts[key] = verdict{invalid: b.Error()}
	}
}

// running reports whether a Pod is one whose proxy is, or will be, up:
// scheduled with an IP, not finished, not being deleted.
func running(p *corev1.Pod) bool {
	return p.Status.PodIP != "" && p.DeletionTimestamp == nil &&
		p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed
}

func objectName(err error) string {
	var oe *model.ObjectError
	if errors.As(err, &oe) {
		return manifest.Key{Kind: oe.Kind, Ref: oe.Ref}.String()
	}
	return ""
}
