package wire

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

func validWorkload() *model.Workload {
	return &model.Workload{
		Ref:            model.Ref{Namespace: "shop", Name: "cart-1"},
		Labels:         map[string]string{"app": "cart", "version": "v2"},
		ServiceAccount: "cart",
		Address:        "198.18.0.7",
		Ports: []model.WorkloadPort{
			{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP1},
			{Name: "grpc", Port: 9090, Protocol: model.ProtocolGRPC},
			{Port: 7000},
		},
		InboundPort: 4143,
		AccessLog:   true,
		Outbound: []model.Outbound{
			{Service: model.Ref{Namespace: "shop", Name: "prices"}, Port: 80, LocalPort: 9001},
		},
		AdminPort: 4191,
	}
}

func TestProtocolRoundTrip(t *testing.T) {
	for _, p := range []model.Protocol{model.ProtocolDetect, model.ProtocolHTTP1, model.ProtocolHTTP2, model.ProtocolGRPC, model.ProtocolTCP} {
		got, err := ProtocolFromProto(ProtocolToProto(p))
		if err != nil || got != p {
			t.Errorf("%q: round trip gave %q, %v", p, got, err)
		}
	}
	for v := range meshv1.Protocol_name {
		p, err := ProtocolFromProto(meshv1.Protocol(v))
		if err != nil {
			t.Errorf("%v: %v", meshv1.Protocol(v), err)
		}
		if back := ProtocolToProto(p); back != meshv1.Protocol(v) {
			t.Errorf("%v: came back as %v", meshv1.Protocol(v), back)
		}
	}
	if _, err := ProtocolFromProto(99); err == nil {
		t.Error("unknown protocol 99 accepted")
	}
}

func TestWorkloadRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    *model.Workload
	}{
		{"full", validWorkload()},
		{"minimal", &model.Workload{Ref: model.Ref{Namespace: "a", Name: "b"}, Address: "::1", InboundPort: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := WorkloadToProto(tc.w)
			// Through bytes too, as a registration arrives.
			raw, err := proto.Marshal(pb)
			if err != nil {
				t.Fatal(err)
			}
			var decoded meshv1.Workload
			if err := proto.Unmarshal(raw, &decoded); err != nil {
				t.Fatal(err)
			}
			got, err := WorkloadFromProto(&decoded)
			if err != nil {
				t.Fatalf("WorkloadFromProto: %v", err)
			}
			if !got.Equal(tc.w) {
				t.Errorf("round trip changed the workload:\n got %+v\nwant %+v", got, tc.w)
			}
		})
	}
}

func TestWorkloadFromProtoNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*meshv1.Workload)
		field string
	}{
		{"no ref", func(w *meshv1.Workload) { w.Ref = nil }, "metadata: must be set"},
		{"bad name", func(w *meshv1.Workload) { w.Ref.Name = "Cart_1" }, "metadata: name:"},
		{"bad address", func(w *meshv1.Workload) { w.Address = "cart.local" }, "spec.address:"},
		{"no inbound port", func(w *meshv1.Workload) { w.InboundPort = 0 }, "spec.proxy.inboundPort:"},
		{"port too big", func(w *meshv1.Workload) { w.Ports[1].Port = 70000 }, "spec.ports[1].port:"},
		{"unknown protocol", func(w *meshv1.Workload) { w.Ports[0].Protocol = 42 }, "spec.ports[0].protocol: unknown protocol 42"},
		{"nil port", func(w *meshv1.Workload) { w.Ports[2] = nil }, "spec.ports[2]: must be set"},
		{"bad label", func(w *meshv1.Workload) { w.Labels["bad key!"] = "x" }, "metadata.labels:"},
		{"bad service account", func(w *meshv1.Workload) { w.ServiceAccount = "Cart" }, "spec.serviceAccount:"},
		{"outbound to nothing", func(w *meshv1.Workload) { w.Outbound[0].Service = nil }, "spec.outbound[0].service:"},
		{"outbound on inbound port", func(w *meshv1.Workload) { w.Outbound[0].LocalPort = w.InboundPort }, "spec.outbound[0].localPort:"},
		{"nil outbound", func(w *meshv1.Workload) { w.Outbound[0] = nil }, "spec.outbound[0]: must be set"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := WorkloadToProto(validWorkload())
			tc.edit(pb)
			_, err := WorkloadFromProto(pb)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
	if _, err := WorkloadFromProto(nil); err == nil {
		t.Error("nil workload accepted")
	}
}

func validState() *model.ServiceState {
	return &model.ServiceState{
		Service: &model.Service{
			Ref:        model.Ref{Namespace: "shop", Name: "cart"},
			Selector:   map[string]string{"app": "cart"},
			ClusterIPs: []string{"198.19.0.7", "fd00:19::7"},
			Ports: []model.ServicePort{
				{Name: "http", Port: 80, TargetPortName: "http", Protocol: model.ProtocolHTTP1},
				{Name: "grpc", Port: 90, TargetPort: 9090, Protocol: model.ProtocolGRPC},
			},
		},
		Endpoints: []*model.Endpoint{
			{ID: "shop/cart-1", Workload: model.Ref{Namespace: "shop", Name: "cart-1"}, Address: "198.18.0.7", ProxyPort: 4143,
				ServiceAccount: model.Ref{Namespace: "shop", Name: "cart"}, Labels: map[string]string{"app": "cart"}, TargetPorts: map[uint32]uint32{80: 8080, 90: 9090}},
			{ID: "shop/cart-2", Workload: model.Ref{Namespace: "shop", Name: "cart-2"}, Address: "198.18.0.8", ProxyPort: 4143,
				ServiceAccount: model.Ref{Namespace: "shop", Name: "default"}, TargetPorts: map[uint32]uint32{80: 8080}},
		},
		Version: 7,
	}
}

func TestServiceRoundTrip(t *testing.T) {
	svc := validState().Service
	got, err := ServiceFromProto(ServiceToProto(svc))
	if err != nil {
		t.Fatal(err)
	}
	// Only what a proxy needs crosses the wire.
	if !SameService(got, svc) {
		t.Errorf("got %+v, want the wire view of %+v", got, svc)
	}
	if got.Selector != nil || got.Ports[0].TargetPortName != "" {
		t.Errorf("control-plane-only fields crossed the wire: %+v", got)
	}
	svc.LoadBalancer = "round-robin"
	if got, err := ServiceFromProto(ServiceToProto(svc)); err != nil || got.LoadBalancer != "round-robin" {
		t.Errorf("load balancer: %+v, %v", got, err)
	}
	bad := ServiceToProto(svc)
	bad.LoadBalancer = "random"
	if _, err := ServiceFromProto(bad); err == nil || !strings.Contains(err.Error(), "load_balancer") {
		t.Errorf("an unknown load balancer: %v, want an error naming load_balancer", err)
	}
	if !slices.Equal(got.ClusterIPs, svc.ClusterIPs) {
		t.Errorf("cluster IPs %q, want %q", got.ClusterIPs, svc.ClusterIPs)
	}
	for _, tc := range []struct {
		ips  []string
		want string
	}{
		{[]string{"cart"}, `cluster_ips[0]: must be an IP address, got "cart"`},
		{[]string{"198.19.0.7", "198.19.0.8"}, "cluster_ips[1]"},
		{[]string{"::ffff:198.19.0.7"}, "cluster_ips[0]"},
	} {
		bad := ServiceToProto(svc)
		bad.ClusterIps = tc.ips
		if _, err := ServiceFromProto(bad); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("cluster IPs %q: %v, want an error containing %q", tc.ips, err, tc.want)
		}
	}
	// Inside an update the field is named from the update's root.
	u := FullUpdate(svc.Ref, validState())
	u.Service.ClusterIps = []string{"cart"}
	if _, err := ApplyUpdate(nil, u, 1); err == nil || !strings.Contains(err.Error(), "service.cluster_ips[0]") {
		t.Errorf("update with a bad cluster IP: %v, want an error naming service.cluster_ips[0]", err)
	}
}

func TestSameService(t *testing.T) {
	a := validState().Service
	b := *a
	b.Selector = map[string]string{"app": "other"}
	if !SameService(a, &b) {
		t.Error("a selector change is visible on the wire")
	}
	b.Ports = append([]model.ServicePort(nil), a.Ports...)
	b.Ports[1].Protocol = model.ProtocolHTTP2
	if SameService(a, &b) {
		t.Error("a protocol change is not visible on the wire")
	}
	c := *a
	c.LoadBalancer = "round-robin"
	if SameService(a, &c) {
		t.Error("a load balancer change is not visible on the wire")
	}
	d := *a
	d.ClusterIPs = []string{"198.19.0.99"}
	if SameService(a, &d) {
		t.Error("a cluster IP change is not visible on the wire")
	}
	if SameService(a, nil) || !SameService(nil, nil) {
		t.Error("nil handling")
	}
}

func TestEndpointRoundTrip(t *testing.T) {
	for _, e := range validState().Endpoints {
		got, err := EndpointFromProto(EndpointToProto(e))
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(e) {
			t.Errorf("got %+v, want %+v", got, e)
		}
	}
}

func TestEndpointFromProtoNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*meshv1.Endpoint)
		field string
	}{
		{"no id", func(e *meshv1.Endpoint) { e.Id = "" }, "id:"},
		{"bad address", func(e *meshv1.Endpoint) { e.Address = "x" }, "address:"},
		{"no port", func(e *meshv1.Endpoint) { e.ProxyPort = 0 }, "proxy_port:"},
		{"no workload", func(e *meshv1.Endpoint) { e.Workload = nil }, "workload:"},
		{"no identity", func(e *meshv1.Endpoint) { e.ServiceAccount = nil }, "service_account:"},
		{"bad target", func(e *meshv1.Endpoint) { e.TargetPorts[80] = 0 }, "target_ports[80]:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pb := EndpointToProto(validState().Endpoints[0])
			tc.edit(pb)
			_, err := EndpointFromProto(pb)
			if err == nil || !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %v does not name %q", err, tc.field)
			}
		})
	}
}

func TestFullUpdateRoundTrip(t *testing.T) {
	st := validState()
	got, err := ApplyUpdate(nil, FullUpdate(st.Service.Ref, st), 9)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 9 || !SameService(got.Service, st.Service) || len(got.Endpoints) != len(st.Endpoints) {
		t.Fatalf("got %+v", got)
	}
	for i := range st.Endpoints {
		if !got.Endpoints[i].Equal(st.Endpoints[i]) {
			t.Errorf("endpoint %d: got %+v, want %+v", i, got.Endpoints[i], st.Endpoints[i])
		}
	}

	absent, err := ApplyUpdate(st, FullUpdate(st.Service.Ref, nil), 10)
	if err != nil || absent != nil {
		t.Errorf("absent service: got %+v, %v", absent, err)
	}
}

func TestApplyUpdate(t *testing.T) {
	base := validState()
	ref := RefToProto(base.Service.Ref)
	moved := EndpointToProto(base.Endpoints[1])
	moved.Address = "198.18.0.9"
	added := EndpointToProto(base.Endpoints[0])
	added.Id, added.Workload.Name = "shop/cart-0", "cart-0"

	for _, tc := range []struct {
		name    string
		base    *model.ServiceState
		update  *meshv1.ServiceUpdate
		wantIDs []string
		wantErr string
		check   func(t *testing.T, got *model.ServiceState)
	}{
		{
			name:    "delta upserts and removes",
			base:    base,
			update:  &meshv1.ServiceUpdate{Ref: ref, Exists: true, Upserted: []*meshv1.Endpoint{moved, added}, Removed: []string{"shop/cart-1"}},
			wantIDs: []string{"shop/cart-0", "shop/cart-2"},
			check: func(t *testing.T, got *model.ServiceState) {
				if got.Service != base.Service {
					t.Error("a delta without a service replaced the definition")
				}
				if e, _ := got.Endpoint("shop/cart-2"); e.Address != "198.18.0.9" {
					t.Errorf("cart-2 not updated: %+v", e)
				}
			},
		},
		{
			name:    "delta changes the definition",
			base:    base,
			update:  &meshv1.ServiceUpdate{Ref: ref, Exists: true, Service: &meshv1.Service{Ref: ref, Ports: []*meshv1.ServicePort{{Port: 81}}}},
			wantIDs: []string{"shop/cart-1", "shop/cart-2"},
			check: func(t *testing.T, got *model.ServiceState) {
				if len(got.Service.Ports) != 1 || got.Service.Ports[0].Port != 81 {
					t.Errorf("definition not replaced: %+v", got.Service)
				}
				if got.Endpoints[0] != base.Endpoints[0] {
					t.Error("unchanged endpoints should be shared")
				}
			},
		},
		{
			name:    "full replaces",
			base:    base,
			update:  &meshv1.ServiceUpdate{Ref: ref, Full: true, Exists: true, Service: ServiceToProto(base.Service), Upserted: []*meshv1.Endpoint{added}},
			wantIDs: []string{"shop/cart-0"},
		},
		{
			name:    "delta with no base",
			update:  &meshv1.ServiceUpdate{Ref: ref, Exists: true},
			wantErr: "no full state",
		},
		{
			name:    "full without a service",
			update:  &meshv1.ServiceUpdate{Ref: ref, Full: true, Exists: true},
			wantErr: "service: must be set",
		},
		{
			name:    "service of another name",
			update:  &meshv1.ServiceUpdate{Ref: ref, Full: true, Exists: true, Service: &meshv1.Service{Ref: &meshv1.Ref{Namespace: "shop", Name: "x"}, Ports: []*meshv1.ServicePort{{Port: 1}}}},
			wantErr: "service.ref",
		},
		{
			name:    "bad endpoint",
			base:    base,
			update:  &meshv1.ServiceUpdate{Ref: ref, Exists: true, Upserted: []*meshv1.Endpoint{{Id: "x"}}},
			wantErr: "upserted[0].address",
		},
		{
			name:    "bad service port",
			base:    base,
			update:  &meshv1.ServiceUpdate{Ref: ref, Exists: true, Service: &meshv1.Service{Ref: ref, Ports: []*meshv1.ServicePort{{Port: 0}}}},
			wantErr: "service.ports[0].port",
		},
		{
			name:    "no ref",
			update:  &meshv1.ServiceUpdate{Full: true},
			wantErr: "ref: must be set",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ApplyUpdate(tc.base, tc.update, 11)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range got.Endpoints {
				ids = append(ids, e.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Errorf("endpoints %v, want %v", ids, tc.wantIDs)
			}
			if got.Version != 11 {
				t.Errorf("version %d", got.Version)
			}
			if tc.check != nil {
				tc.check(t, got)
			}
			if len(base.Endpoints) != 2 || base.Endpoints[1].Address != "198.18.0.8" {
				t.Error("the base was modified")
			}
		})
	}
}
