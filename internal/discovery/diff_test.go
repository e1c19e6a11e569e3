package discovery

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

const src = "test"

func ref(s string) model.Ref {
	ns, name, _ := strings.Cut(s, "/")
	return model.Ref{Namespace: ns, Name: name}
}

func service(r string, app string, ports ...model.ServicePort) *model.Service {
	if len(ports) == 0 {
		ports = []model.ServicePort{{Port: 80, TargetPort: 8080, Protocol: model.ProtocolHTTP1}}
	}
	return &model.Service{Ref: ref(r), Selector: map[string]string{"app": app}, Ports: ports}
}

func workload(r, app, addr string) *model.Workload {
	return &model.Workload{
		Ref:         ref(r),
		Labels:      map[string]string{"app": app},
		Address:     addr,
		InboundPort: 4143,
		Ports:       []model.WorkloadPort{{Port: 8080}},
	}
}

func apply(t testing.TB, store *model.Store, c model.Changes) *model.Snapshot {
	t.Helper()
	if err := store.Apply(src, c); err != nil {
		t.Fatal(err)
	}
	return store.Snapshot()
}

// summary renders a response compactly for table tests.
func summary(resp *meshv1.StreamResponse) string {
	if resp == nil {
		return "<none>"
	}
	var b strings.Builder
	if w := resp.GetWorkload(); w != nil {
		fmt.Fprintf(&b, "workload %s/%s %s; ", w.GetRef().GetNamespace(), w.GetRef().GetName(), w.GetAddress())
	}
	for _, u := range resp.GetServices() {
		fmt.Fprintf(&b, "%s/%s", u.GetRef().GetNamespace(), u.GetRef().GetName())
		switch {
		case !u.GetExists():
			b.WriteString(" gone")
		case u.GetFull():
			b.WriteString(" full")
		default:
			b.WriteString(" delta")
		}
		if s := u.GetService(); s != nil {
			fmt.Fprintf(&b, " svc(%d ports)", len(s.GetPorts()))
		}
		for _, e := range u.GetUpserted() {
			fmt.Fprintf(&b, " +%s@%s", e.GetId(), e.GetAddress())
		}
		for _, id := range u.GetRemoved() {
			fmt.Fprintf(&b, " -%s", id)
		}
		b.WriteString("; ")
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func TestDiff(t *testing.T) {
	me := ref("shop/web-1")
	cart := ref("shop/cart")
	prices := ref("shop/prices")

	// Each step changes the store, then diffs what the stream has sent
	// against the new snapshot. Steps run in order on one stream.
	steps := []struct {
		desc    string
		changes model.Changes
		check   []model.Ref
		forget  []model.Ref
		want    string
	}{
		{
			desc: "first response goes out even with nothing to say",
			want: "",
		},
		{
			desc:    "workload appears later",
			changes: model.Changes{PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1")}},
			want:    "workload shop/web-1 198.18.0.1",
		},
		{
			desc:  "nothing changed: nothing sent",
			check: []model.Ref{},
			want:  "<none>",
		},
		{
			desc:  "subscribe: full state, exists=false for the unknown",
			check: []model.Ref{prices, cart},
			changes: model.Changes{
				PutServices:  []*model.Service{service("shop/cart", "cart")},
				PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.2")},
			},
			want: "shop/cart full svc(1 ports) +shop/cart-1@198.18.0.2; shop/prices gone",
		},
		{
			desc:    "endpoint added: upsert only",
			check:   []model.Ref{cart},
			changes: model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-2", "cart", "198.18.0.3")}},
			want:    "shop/cart delta +shop/cart-2@198.18.0.3",
		},
		{
			desc:    "endpoint changed: upsert",
			check:   []model.Ref{cart},
			changes: model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.9")}},
			want:    "shop/cart delta +shop/cart-1@198.18.0.9",
		},
		{
			desc:    "endpoint removed",
			check:   []model.Ref{cart},
			changes: model.Changes{DeleteWorkloads: []model.Ref{ref("shop/cart-2")}},
			want:    "shop/cart delta -shop/cart-2",
		},
		{
			desc:  "definition changed: service sent with the delta",
			check: []model.Ref{cart},
			changes: model.Changes{PutServices: []*model.Service{service("shop/cart", "cart",
				model.ServicePort{Port: 80, TargetPort: 8080, Protocol: model.ProtocolGRPC})}},
			want: "shop/cart delta svc(1 ports)",
		},
		{
			desc:  "a change the proxy cannot see is not sent",
			check: []model.Ref{cart},
			changes: model.Changes{PutServices: []*model.Service{func() *model.Service {
				s := service("shop/cart", "cart", model.ServicePort{Port: 80, TargetPort: 8080, Protocol: model.ProtocolGRPC})
				s.Labels = map[string]string{"team": "checkout"}
				return s
			}()}},
			want: "<none>",
		},
		{
			desc:    "a service that appears gets a full state",
			check:   []model.Ref{prices},
			changes: model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}},
			want:    "shop/prices full svc(1 ports)",
		},
		{
			desc:    "a deleted service is gone",
			check:   []model.Ref{cart},
			changes: model.Changes{DeleteServices: []model.Ref{cart}},
			want:    "shop/cart gone",
		},
		{
			desc:    "workload changed: sent again, alone",
			changes: model.Changes{PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.10")}},
			want:    "workload shop/web-1 198.18.0.10",
		},
		{
			desc:   "resubscribing after forgetting starts with a full state",
			forget: []model.Ref{prices},
			check:  []model.Ref{prices, prices},
			want:   "shop/prices full svc(1 ports)",
		},
	}

	store := model.NewStore()
	sent := NewSent()
	for _, step := range steps {
		t.Run(step.desc, func(t *testing.T) {
			snap := store.Snapshot()
			if len(step.changes.PutServices)+len(step.changes.DeleteServices)+len(step.changes.PutWorkloads)+len(step.changes.DeleteWorkloads) > 0 {
				snap = apply(t, store, step.changes)
			}
			for _, r := range step.forget {
				sent.Forget(r)
			}
			before := len(sent.Services)
			resp, patch := Diff(sent, snap, me, step.check)
			if len(sent.Services) != before {
				t.Error("Diff modified sent")
			}
			if got := summary(resp); got != step.want {
				t.Errorf("got  %q\nwant %q", got, step.want)
			}
			if resp != nil && resp.GetVersion() != snap.Version {
				t.Errorf("version %d, want %d", resp.GetVersion(), snap.Version)
			}
			sent.Apply(patch)
			for _, r := range step.check {
				cur, _ := snap.Service(r)
				if sent.Services[r] != cur {
					t.Errorf("%s: sent records %p, snapshot has %p", r, sent.Services[r], cur)
				}
			}
		})
	}
}

// TestDiffConverges drives random changes through Diff and applies each
// response as a proxy does; after every step the proxy's view must equal
// the snapshot for each subscribed service.
func TestDiffConverges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	store := model.NewStore()
	apps := []string{"a", "b", "c", "d"}
	var subs []model.Ref
	for _, app := range apps {
		subs = append(subs, ref("ns/"+app))
	}
	sent := NewSent()
	view := map[model.Ref]*model.ServiceState{}

	for step := range 500 {
		var c model.Changes
		for range 1 + rng.IntN(3) {
			app := apps[rng.IntN(len(apps))]
			switch rng.IntN(6) {
			case 0:
				c.DeleteServices = append(c.DeleteServices, ref("ns/"+app))
			case 1:
				port := uint32(80 + rng.IntN(2))
				c.PutServices = append(c.PutServices, service("ns/"+app, app, model.ServicePort{Port: port, TargetPort: 8080}))
			case 2:
				c.DeleteWorkloads = append(c.DeleteWorkloads, ref(fmt.Sprintf("ns/w%d", rng.IntN(8))))
			default:
				w := workload(fmt.Sprintf("ns/w%d", rng.IntN(8)), app, fmt.Sprintf("198.18.0.%d", 1+rng.IntN(3)))
				c.PutWorkloads = append(c.PutWorkloads, w)
			}
		}
		snap := apply(t, store, c)
		// Look at a random subset, as the server does when only some
		// services changed; the rest catch up on a later step.
		check := slices.DeleteFunc(slices.Clone(subs), func(model.Ref) bool { return rng.IntN(3) == 0 })
		resp, patch := Diff(sent, snap, ref("ns/me"), check)
		sent.Apply(patch)
		for _, u := range resp.GetServices() {
			r := wire.RefFromProto(u.GetRef())
			st, err := wire.ApplyUpdate(view[r], u, resp.GetVersion())
			if err != nil {
				t.Fatalf("step %d: %s: %v", step, r, err)
			}
			view[r] = st
		}
		for _, r := range check {
			want, _ := snap.Service(r)
			if !sameState(view[r], want) {
				t.Fatalf("step %d: %s: proxy has %s, snapshot %s", step, r, describe(view[r]), describe(want))
			}
		}
	}
}

func sameState(a, b *model.ServiceState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return wire.SameService(a.Service, b.Service) &&
		slices.EqualFunc(a.Endpoints, b.Endpoints, func(x, y *model.Endpoint) bool { return x.Equal(y) })
}

func describe(st *model.ServiceState) string {
	if st == nil {
		return "nothing"
	}
	var eps []string
	for _, e := range st.Endpoints {
		eps = append(eps, e.ID+"@"+e.Address)
	}
	return fmt.Sprintf("ports %v endpoints %v", st.Service.Ports, eps)
}

func TestDiffSendsAuthzWithTheWorkloadAndOnChange(t *testing.T) {
	store := model.NewStore()
	me := ref("shop/cart-1")
	sent := NewSent()
	step := func(desc string, snap *model.Snapshot, wantAuthz bool, wantSelected bool) {
		t.Helper()
		resp, patch := Diff(sent, snap, me, nil)
		if got := resp.GetAuthz() != nil; got != wantAuthz {
			t.Fatalf("%s: authz sent %v, want %v (%s)", desc, got, wantAuthz, summary(resp))
		}
		if wantAuthz && resp.GetAuthz().GetAuthz().GetSelected() != wantSelected {
			t.Fatalf("%s: authz %v, want selected %v", desc, resp.GetAuthz(), wantSelected)
		}
		sent.Apply(patch)
	}
	step("before the workload exists", store.Snapshot(), false, false)
	snap := apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.1")}})
	step("with the workload, no policy", snap, true, false)
	step("nothing changed", snap, false, false)

	allow := &model.AuthorizationPolicy{Ref: ref("shop/readers"), Target: model.PolicyTarget{Selector: map[string]string{"app": "cart"}}, Action: model.AuthzAllow,
		Rules: []model.AuthzRule{{From: []model.Principal{{Namespace: "shop", ServiceAccount: "web"}}}}}
	snap = apply(t, store, model.Changes{PutPolicies: []model.Policy{allow}})
	step("a policy selects it", snap, true, true)
	snap = apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/other-1", "other", "198.18.0.2")}})
	step("another workload changed", snap, false, false)
	snap = apply(t, store, model.Changes{DeletePolicies: []model.PolicyKey{allow.Key()}})
	step("the policy is gone", snap, true, false)
}
