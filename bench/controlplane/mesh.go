package main

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/weftmesh/weft/internal/model"
)

// Scale is the size of the mesh the harness builds and the load it puts
// on the control plane.
type Scale struct {
	Namespaces int
	Services   int
	// Endpoints is the total: each service gets Endpoints/Services
	// workloads, each selected by that service alone.
	Endpoints int
	// Proxies stay connected through the run; NewProxies connect one at a
	// time afterwards to time a new proxy's first full config.
	Proxies    int
	NewProxies int
	// MinSubs and MaxSubs bound how many services each proxy subscribes to.
	MinSubs, MaxSubs int
	// Changes are endpoint changes made one after another.
	Changes int
	Seed    uint64
}

func (s Scale) validate() error {
	switch {
	case s.Namespaces < 1 || s.Services < s.Namespaces:
		return fmt.Errorf("scale: want 1 <= namespaces <= services, got %d namespaces, %d services", s.Namespaces, s.Services)
	case s.Endpoints < 3*s.Services:
		// Workloads 0 and 1 of a service are proxies' own; changes move the others.
		return fmt.Errorf("scale: endpoints (%d) must be at least 3 per service (%d services)", s.Endpoints, s.Services)
	case s.Proxies+s.NewProxies > s.Services:
		return fmt.Errorf("scale: proxies + new proxies (%d) must not exceed services (%d): each proxy is a workload of its own service", s.Proxies+s.NewProxies, s.Services)
	case s.MinSubs < 1 || s.MaxSubs < s.MinSubs || s.MaxSubs > s.Services:
		return fmt.Errorf("scale: want 1 <= min subscriptions <= max subscriptions <= services, got %d..%d", s.MinSubs, s.MaxSubs)
	case s.Endpoints+s.Changes >= 1<<17-2:
		// Every address, and each one a change moves an endpoint to, is
		// one of 198.18.0.0/15, the range reserved for network tests.
		return fmt.Errorf("scale: endpoints + changes (%d) must fit in 198.18.0.0/15 (%d addresses)", s.Endpoints+s.Changes, 1<<17-2)
	}
	return nil
}

// mesh is the generated model and who subscribes to what.
type mesh struct {
	scale     Scale
	perSvc    int
	services  []*model.Service
	workloads []*model.Workload // perSvc per service, in service order
	// proxies, then new proxies: each is the proxy of a workload.
	proxies []proxySpec
}

type proxySpec struct {
	workload *model.Workload
	subs     []model.Ref
}

const (
	appPort     = 8080
	inboundPort = 15006
)

var firstAddr = netip.MustParseAddr("198.18.0.1")

// addr returns the i-th address of 198.18.0.0/15, from 198.18.0.1.
func addr(i int) string {
	a := firstAddr.As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += uint32(i)
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}).String()
}

// newMesh builds the mesh deterministically from the scale's seed.
// Workload w of service s is "<svc>-<w>", runs as the service account
// named after its service, and has an address of 198.18.0.0/16.
// Proxies are workload 0 (NewProxies: workload 1) of services spread
// over the mesh; each subscribes to MinSubs..MaxSubs services, half in
// its own namespace, half anywhere with a Zipf skew, so that a few
// services are called by many proxies, as in real meshes.
func newMesh(sc Scale) (*mesh, error) {
	if err := sc.validate(); err != nil {
		return nil, err
	}
	m := &mesh{scale: sc, perSvc: sc.Endpoints / sc.Services}
	perNS := (sc.Services + sc.Namespaces - 1) / sc.Namespaces
	for i := range sc.Services {
		ns := fmt.Sprintf("ns-%03d", i/perNS)
		name := fmt.Sprintf("svc-%05d", i)
		svc := &model.Service{
			Ref:      model.Ref{Namespace: ns, Name: name},
			Selector: map[string]string{"app": name},
			Ports:    []model.ServicePort{{Name: "http", Port: appPort, Protocol: model.ProtocolHTTP1}},
		}
		if err := svc.Validate(); err != nil {
			return nil, fmt.Errorf("service %s: %w", svc.Ref, err)
		}
		m.services = append(m.services, svc)
		for w := range m.perSvc {
			wl := &model.Workload{
				Ref:            model.Ref{Namespace: ns, Name: fmt.Sprintf("%s-%d", name, w)},
				Labels:         map[string]string{"app": name},
				ServiceAccount: name,
				Address:        addr(len(m.workloads)),
				Ports:          []model.WorkloadPort{{Name: "http", Port: appPort, Protocol: model.ProtocolHTTP1}},
				InboundPort:    inboundPort,
			}
			if err := wl.Validate(); err != nil {
				return nil, fmt.Errorf("workload %s: %w", wl.Ref, err)
			}
			m.workloads = append(m.workloads, wl)
		}
	}

	rng := rand.New(rand.NewPCG(sc.Seed, 0x77656674))
	zipf := rand.NewZipf(rng, 1.2, 8, uint64(sc.Services-1))
	// A random permutation, so the popular services are not all in the
	// first namespace.
	popular := rng.Perm(sc.Services)
	total := sc.Proxies + sc.NewProxies
	for p := range total {
		si := p * sc.Services / total
		w := 0
		if p >= sc.Proxies {
			w = 1
		}
		k := sc.MinSubs + rng.IntN(sc.MaxSubs-sc.MinSubs+1)
		seen := map[int]bool{si: true}
		var subs []model.Ref
		nsFirst := si / perNS * perNS
		nsLen := min(perNS, sc.Services-nsFirst)
		for attempts := 0; len(subs) < k && attempts < 100*k; attempts++ {
			var pick int
			if len(subs) < k/2 && nsLen > 1 {
				pick = nsFirst + rng.IntN(nsLen)
			} else {
				pick = popular[zipf.Uint64()]
			}
			if seen[pick] {
				continue
			}
			seen[pick] = true
			subs = append(subs, m.services[pick].Ref)
		}
		m.proxies = append(m.proxies, proxySpec{workload: m.workloads[si*m.perSvc+w], subs: subs})
	}
	return m, nil
}

// batches returns Changes loading the mesh in batches of one namespace,
// as a source that reads one directory after another would.
func (m *mesh) batches() []model.Changes {
	var out []model.Changes
	var cur model.Changes
	ns := ""
	for i, svc := range m.services {
		if svc.Ref.Namespace != ns && ns != "" {
			out = append(out, cur)
			cur = model.Changes{}
		}
		ns = svc.Ref.Namespace
		cur.PutServices = append(cur.PutServices, svc)
		cur.PutWorkloads = append(cur.PutWorkloads, m.workloads[i*m.perSvc:(i+1)*m.perSvc]...)
	}
	return append(out, cur)
}

// subscribers returns, for each service, the indexes of the steady
// proxies that subscribe to it.
func (m *mesh) subscribers() map[model.Ref][]int {
	out := map[model.Ref][]int{}
	for p, spec := range m.proxies[:m.scale.Proxies] {
		for _, r := range spec.subs {
			out[r] = append(out[r], p)
		}
	}
	return out
}
