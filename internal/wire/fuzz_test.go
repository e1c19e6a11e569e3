package wire

import (
	"testing"

	"google.golang.org/protobuf/proto"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// FuzzWorkloadFromProto feeds registration payloads, as bytes off the
// wire, to the conversion. Whatever it accepts must be a valid workload
// that survives a round trip unchanged. Seeds are in
// testdata/fuzz/FuzzWorkloadFromProto.
func FuzzWorkloadFromProto(f *testing.F) {
	seed, err := proto.Marshal(WorkloadToProto(validWorkload()))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pb meshv1.Workload
		if err := proto.Unmarshal(raw, &pb); err != nil {
			return
		}
		w, err := WorkloadFromProto(&pb)
		if err != nil {
			if w != nil {
				t.Fatalf("returned a workload with error %v", err)
			}
			return
		}
		if err := w.Validate(); err != nil {
			t.Fatalf("accepted an invalid workload: %v", err)
		}
		again, err := WorkloadFromProto(WorkloadToProto(w))
		if err != nil {
			t.Fatalf("round trip of an accepted workload failed: %v", err)
		}
		if !again.Equal(w) {
			t.Fatalf("round trip changed the workload:\n got %+v\nwant %+v", again, w)
		}
	})
}

// FuzzApplyUpdate feeds service updates, as bytes off the wire, to what
// the proxy applies them with: it must never panic, and what it accepts
// must keep the model's invariants: endpoints sorted by ID, cluster IPs
// the model accepts (a transparent proxy matches connections against
// them). Seeds beyond those below are in testdata/fuzz/FuzzApplyUpdate.
func FuzzApplyUpdate(f *testing.F) {
	st := validState()
	for _, u := range []*meshv1.ServiceUpdate{
		FullUpdate(st.Service.Ref, st),
		FullUpdate(st.Service.Ref, nil),
		{Ref: RefToProto(st.Service.Ref), Exists: true, Removed: []string{"shop/cart-1"}, Upserted: []*meshv1.Endpoint{EndpointToProto(st.Endpoints[0])}},
	} {
		raw, err := proto.Marshal(u)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, true)
		f.Add(raw, false)
	}
	f.Fuzz(func(t *testing.T, raw []byte, withBase bool) {
		var u meshv1.ServiceUpdate
		if err := proto.Unmarshal(raw, &u); err != nil {
			return
		}
		var base *model.ServiceState
		if withBase {
			base = validState()
		}
		got, err := ApplyUpdate(base, &u, 1)
		if err != nil || got == nil {
			return
		}
		if got.Service == nil {
			t.Fatal("accepted a state with no service")
		}
		var problems model.FieldErrors
		model.ValidateClusterIPs(&problems, "clusterIPs", got.Service.ClusterIPs)
		if err := problems.Err(); err != nil {
			t.Fatalf("accepted invalid cluster IPs: %v", err)
		}
		for i := 1; i < len(got.Endpoints); i++ {
			if got.Endpoints[i-1].ID >= got.Endpoints[i].ID {
				t.Fatalf("endpoints not sorted by unique ID: %q, %q", got.Endpoints[i-1].ID, got.Endpoints[i].ID)
			}
		}
	})
}

func FuzzAuthzFromProto(f *testing.F) {
	for _, a := range []*model.Authz{nil, validAuthz()} {
		raw, err := proto.Marshal(AuthzToProto(a))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pb meshv1.AuthzUpdate
		if err := proto.Unmarshal(raw, &pb); err != nil {
			return
		}
		a, err := AuthzFromProto(&pb)
		if err != nil {
			if a != nil {
				t.Fatalf("returned an authz with error %v", err)
			}
			return
		}
		if a == nil {
			return
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid authz: %v", err)
		}
		again, err := AuthzFromProto(AuthzToProto(a))
		if err != nil {
			t.Fatalf("round trip of an accepted authz failed: %v", err)
		}
		if !again.Equal(a) {
			t.Fatalf("round trip changed the authz:\n got %+v\nwant %+v", again, a)
		}
	})
}

func FuzzRoutesFromProto(f *testing.F) {
	for _, tbl := range []*model.RouteTable{nil, validRoutes()} {
		raw, err := proto.Marshal(RoutesToProto(tbl))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pb meshv1.RoutesUpdate
		if err := proto.Unmarshal(raw, &pb); err != nil {
			return
		}
		tbl, err := RoutesFromProto(&pb)
		if err != nil || tbl == nil {
			if err != nil && tbl != nil {
				t.Fatalf("returned a table with error %v", err)
			}
			return
		}
		if err := tbl.Validate(); err != nil {
			t.Fatalf("accepted an invalid table: %v", err)
		}
		again, err := RoutesFromProto(RoutesToProto(tbl))
		if err != nil || !again.Equal(tbl) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, again, tbl)
		}
	})
}

func FuzzTrafficFromProto(f *testing.F) {
	for _, tp := range []*model.TrafficPolicy{nil, validTraffic()} {
		raw, err := proto.Marshal(TrafficToProto(tp))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var pb meshv1.TrafficUpdate
		if err := proto.Unmarshal(raw, &pb); err != nil {
			return
		}
		tp, err := TrafficFromProto(&pb)
		if err != nil || tp == nil {
			if err != nil && tp != nil {
				t.Fatalf("returned a policy with error %v", err)
			}
			return
		}
		if err := tp.Validate(); err != nil {
			t.Fatalf("accepted an invalid policy: %v", err)
		}
		again, err := TrafficFromProto(TrafficToProto(tp))
		if err != nil || !again.Equal(tp) {
			t.Fatalf("round trip: %v\n got %+v\nwant %+v", err, again, tp)
		}
	})
}
