package model

import (
	"errors"
	"strings"
	"testing"
)

func svc(name string, selector map[string]string, ports ...ServicePort) *Service {
	return &Service{Ref: Ref{"demo", name}, Selector: selector, Ports: ports}
}

func wl(name string, labels map[string]string, inbound uint32, ports ...WorkloadPort) *Workload {
	return &Workload{Ref: Ref{"demo", name}, Labels: labels, Address: "127.0.0.1", InboundPort: inbound, Ports: ports}
}

func ids(st *ServiceState) []string {
	var out []string
	for _, e := range st.Endpoints {
		out = append(out, e.ID)
	}
	return out
}

func TestStoreEndpoints(t *testing.T) {
	s := NewStore()
	catalog := Ref{"demo", "catalog"}
	stock := Ref{"demo", "stock"}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Apply("files", Changes{
		PutServices: []*Service{
			svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Name: "http", Port: 80, TargetPortName: "http"}),
			svc("stock", map[string]string{"app": "stock"}, ServicePort{Port: 9090}),
		},
		PutWorkloads: []*Workload{
			wl("c1", map[string]string{"app": "catalog", "version": "v1"}, 4001, WorkloadPort{Name: "http", Port: 8081}),
			wl("c2", map[string]string{"app": "catalog", "version": "v2"}, 4002, WorkloadPort{Name: "http", Port: 8082}),
			// Selected but without the named port: not an endpoint.
			wl("c3", map[string]string{"app": "catalog"}, 4003),
			wl("s1", map[string]string{"app": "stock"}, 4004, WorkloadPort{Port: 9090}),
			// Selected, but serves stock's port on no declared port.
			wl("s2", map[string]string{"app": "stock"}, 4005, WorkloadPort{Port: 8080}),
		},
	}))
	snap1 := s.Snapshot()
	cat1, _ := snap1.Service(catalog)
	if got := ids(cat1); len(got) != 2 || got[0] != "demo/c1" || got[1] != "demo/c2" {
		t.Fatalf("catalog endpoints = %v", got)
	}
	if ep, _ := cat1.Endpoint("demo/c2"); ep.TargetPorts[80] != 8082 || ep.HostPort() != "127.0.0.1:4002" {
		t.Errorf("c2 endpoint = %+v", ep)
	}
	stock1, _ := snap1.Service(stock)
	if ep, _ := stock1.Endpoint("demo/s1"); ep.TargetPorts[9090] != 9090 {
		t.Errorf("stock target port = %v, want the service port", ep.TargetPorts)
	}
	if got := ids(stock1); len(got) != 1 {
		t.Errorf("stock endpoints = %v, want only s1, the one that declares the port", got)
	}

	// Relabel c2 out of catalog: only catalog changes, and the old
	// snapshot is untouched.
	must(s.Apply("files", Changes{PutWorkloads: []*Workload{
		wl("c2", map[string]string{"app": "other"}, 4002, WorkloadPort{Name: "http", Port: 8082}),
	}}))
	snap2 := s.Snapshot()
	select {
	case <-snap1.Superseded():
	default:
		t.Error("old snapshot not marked superseded")
	}
	cat2, _ := snap2.Service(catalog)
	stock2, _ := snap2.Service(stock)
	if got := ids(cat2); len(got) != 1 || got[0] != "demo/c1" {
		t.Errorf("catalog endpoints = %v", got)
	}
	if stock2 != stock1 {
		t.Error("stock's state was rebuilt though nothing of it changed")
	}
	if got := ids(cat1); len(got) != 2 {
		t.Errorf("old snapshot changed: %v", got)
	}

	// An identical put publishes nothing.
	v := s.Snapshot().Version
	must(s.Apply("files", Changes{PutWorkloads: []*Workload{wl("s1", map[string]string{"app": "stock"}, 4004, WorkloadPort{Port: 9090})}}))
	if s.Snapshot().Version != v {
		t.Error("an unchanged object published a new snapshot")
	}

	// Deleting the workload and the service.
	must(s.Apply("files", Changes{DeleteWorkloads: []Ref{{"demo", "c1"}}, DeleteServices: []Ref{stock}}))
	cat3, _ := s.Snapshot().Service(catalog)
	if len(cat3.Endpoints) != 0 {
		t.Errorf("catalog endpoints = %v, want none", ids(cat3))
	}
	if _, ok := s.Snapshot().Service(stock); ok {
		t.Error("stock still in the model")
	}

	// A service put after its workloads picks them up.
	must(s.Apply("files", Changes{PutServices: []*Service{svc("stock", map[string]string{"app": "stock"}, ServicePort{Port: 9090})}}))
	stock4, _ := s.Snapshot().Service(stock)
	if got := ids(stock4); len(got) != 1 {
		t.Errorf("stock endpoints = %v", got)
	}
}

func TestStoreOwnership(t *testing.T) {
	s := NewStore()
	w := wl("w", nil, 4001)
	if err := s.Apply("registration", Changes{PutWorkloads: []*Workload{w}}); err != nil {
		t.Fatal(err)
	}
	err := s.Apply("files", Changes{PutWorkloads: []*Workload{wl("w", nil, 5000)}, DeleteWorkloads: []Ref{w.Ref}})
	if !errors.Is(err, ErrOwnedElsewhere) {
		t.Fatalf("err = %v, want ErrOwnedElsewhere", err)
	}
	if got, _ := s.Snapshot().Workload(w.Ref); got.InboundPort != 4001 {
		t.Error("another source changed the workload")
	}
	if owner, _ := s.WorkloadOwner(w.Ref); owner != "registration" {
		t.Errorf("owner = %q", owner)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		desc string
		obj  interface{ Validate() error }
		want string
	}{
		{"ok service", svc("a", nil, ServicePort{Port: 80}), ""},
		{"no ports", svc("a", nil), "spec.ports: must have at least one port"},
		{"unnamed ports", svc("a", nil, ServicePort{Port: 80}, ServicePort{Port: 81}), "spec.ports[0].name: must be set"},
		{"dup ports", svc("a", nil, ServicePort{Name: "a", Port: 80}, ServicePort{Name: "b", Port: 80}), "spec.ports[1].port: duplicate port 80"},
		{"bad label", svc("a", map[string]string{"a": "b c"}, ServicePort{Port: 80}), "spec.selector.a"},
		{"ok workload", wl("w", nil, 1), ""},
		{"app port is the inbound port", &Workload{Ref: Ref{"d", "w"}, Address: "::1", InboundPort: 5,
			Ports: []WorkloadPort{{Port: 5}}}, "spec.ports[0].port: 5 is the proxy's inbound port"},
		{"app port is the admin port", &Workload{Ref: Ref{"d", "w"}, Address: "::1", InboundPort: 5, AdminPort: 6,
			Ports: []WorkloadPort{{Port: 8080}, {Port: 6}}}, "spec.ports[1].port: 6 is the proxy's admin port"},
		{"app port is an outbound port", &Workload{Ref: Ref{"d", "w"}, Address: "::1", InboundPort: 5,
			Ports:    []WorkloadPort{{Port: 7}},
			Outbound: []Outbound{{Service: Ref{"d", "s"}, Port: 1, LocalPort: 7}}}, "spec.ports[0].port: 7 is the local port of outbound d/s"},
		{"outbound clash", &Workload{Ref: Ref{"d", "w"}, Address: "::1", InboundPort: 5,
			Outbound: []Outbound{{Service: Ref{"d", "s"}, Port: 1, LocalPort: 5}}}, "spec.outbound[0].localPort: is the proxy's inbound port 5"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			err := tc.obj.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestNotReadyWorkloadIsNoEndpoint: a workload that is not ready (a Pod
// whose app is starting) serves no Service until it is.
func TestNotReadyWorkloadIsNoEndpoint(t *testing.T) {
	s := NewStore()
	catalog := Ref{"demo", "catalog"}
	c1 := wl("c1", map[string]string{"app": "catalog"}, 4001, WorkloadPort{Port: 80})
	c1.NotReady = true
	if err := s.Apply("kube", Changes{PutServices: []*Service{svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80})},
		PutWorkloads: []*Workload{c1}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Snapshot().Service(catalog); len(st.Endpoints) != 0 {
		t.Fatalf("a workload not ready is an endpoint: %v", ids(st))
	}
	if _, ok := s.Snapshot().Workload(c1.Ref); !ok {
		t.Fatal("a workload not ready is not in the model: its proxy would get no config")
	}
	ready := *c1
	ready.NotReady = false
	if err := s.Apply("kube", Changes{PutWorkloads: []*Workload{&ready}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Snapshot().Service(catalog); len(st.Endpoints) != 1 {
		t.Fatalf("the workload once ready: endpoints %v", ids(st))
	}
}

// TestServiceMembers: a service that lists its members (Kubernetes mode's
// EndpointSlices) has those workloads as endpoints, whatever their labels
// and readiness say, and only them; an empty list is no endpoints, not
// the selector's.
func TestServiceMembers(t *testing.T) {
	catalog := Ref{"demo", "catalog"}
	notReady := wl("c1", map[string]string{"app": "catalog"}, 4001, WorkloadPort{Port: 80})
	notReady.NotReady = true
	workloads := []*Workload{
		notReady,
		wl("c2", map[string]string{"app": "catalog"}, 4002, WorkloadPort{Port: 80}),
		wl("c3", map[string]string{"app": "other"}, 4003, WorkloadPort{Port: 80}),
		wl("c4", map[string]string{"app": "catalog"}, 4004, WorkloadPort{Port: 9090}),
	}
	s := NewStore()
	for _, tc := range []struct {
		name    string
		members map[string]bool
		want    string
	}{
		{"selector", nil, "demo/c2"},
		{"listed", map[string]bool{"c1": true, "c3": true, "c4": true, "gone": true}, "demo/c1,demo/c3"},
		{"none listed", map[string]bool{}, ""},
		{"selector again", nil, "demo/c2"},
	} {
		sv := svc("catalog", map[string]string{"app": "catalog"}, ServicePort{Port: 80})
		sv.Members = tc.members
		if err := s.Apply("kube", Changes{PutServices: []*Service{sv}, PutWorkloads: workloads}); err != nil {
			t.Fatal(err)
		}
		st, _ := s.Snapshot().Service(catalog)
		if got := strings.Join(ids(st), ","); got != tc.want {
			t.Errorf("%s: endpoints %q, want %q", tc.name, got, tc.want)
		}
	}
}
