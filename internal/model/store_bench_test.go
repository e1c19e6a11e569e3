package model

import (
	"fmt"
	"testing"
)

// benchMesh loads a store with services spread over namespaces, each
// selecting perSvc workloads of its own, as the control-plane harness
// (bench/controlplane) does at the scale.
func benchMesh(b *testing.B, namespaces, services, perSvc int) (*Store, []*Workload) {
	b.Helper()
	s := NewStore()
	perNS := services / namespaces
	var workloads []*Workload
	for n := range namespaces {
		var c Changes
		ns := fmt.Sprintf("ns-%03d", n)
		for i := range perNS {
			name := fmt.Sprintf("svc-%05d", n*perNS+i)
			c.PutServices = append(c.PutServices, &Service{Ref: Ref{ns, name}, Selector: map[string]string{"app": name},
				Ports: []ServicePort{{Name: "http", Port: 8080, Protocol: ProtocolHTTP1}}})
			for w := range perSvc {
				wl := &Workload{Ref: Ref{ns, fmt.Sprintf("%s-%d", name, w)}, Labels: map[string]string{"app": name}, ServiceAccount: name,
					Address: fmt.Sprintf("198.18.%d.%d", len(workloads)/250, 1+len(workloads)%250), InboundPort: 15006,
					Ports: []WorkloadPort{{Name: "http", Port: 8080, Protocol: ProtocolHTTP1}}}
				workloads = append(workloads, wl)
				c.PutWorkloads = append(c.PutWorkloads, wl)
			}
		}
		if err := s.Apply("bench", c); err != nil {
			b.Fatal(err)
		}
	}
	return s, workloads
}

// BenchmarkStoreEndpointChange is one endpoint change (a workload moves to
// another address) published as a new snapshot, the control plane's work
// per change before discovery: at the harness's full scale and at a
// hundredth of it, to show how the cost grows with the mesh.
func BenchmarkStoreEndpointChange(b *testing.B) {
	for _, sc := range []struct{ namespaces, services, perSvc int }{{10, 100, 10}, {100, 10_000, 10}} {
		b.Run(fmt.Sprintf("services=%d/endpoints=%d", sc.services, sc.services*sc.perSvc), func(b *testing.B) {
			s, workloads := benchMesh(b, sc.namespaces, sc.services, sc.perSvc)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				moved := *workloads[(i*7919)%len(workloads)]
				moved.Address = fmt.Sprintf("198.19.%d.%d", i/250%250, 1+i%250)
				if err := s.Apply("bench", Changes{PutWorkloads: []*Workload{&moved}}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStoreLoad is a source's first full read of a mesh of 1,000
// services and 10,000 endpoints in 10 namespaces, one batch per namespace.
func BenchmarkStoreLoad(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchMesh(b, 10, 1000, 10)
	}
}
