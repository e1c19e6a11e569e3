package discovery

import (
	"fmt"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// benchDiffMesh is a store of 20 services of 10 endpoints each, and the
// proxy of demo/web-0, which subscribes to all of them.
func benchDiffMesh(b *testing.B) (*model.Store, model.Ref, []model.Ref) {
	b.Helper()
	store := model.NewStore()
	var c model.Changes
	var subs []model.Ref
	for i := range 20 {
		name := fmt.Sprintf("svc-%02d", i)
		c.PutServices = append(c.PutServices, service("demo/"+name, name))
		subs = append(subs, ref("demo/"+name))
		for j := range 10 {
			c.PutWorkloads = append(c.PutWorkloads, workload(fmt.Sprintf("demo/%s-%d", name, j), name, fmt.Sprintf("198.18.%d.%d", i, j+1)))
		}
	}
	c.PutWorkloads = append(c.PutWorkloads, workload("demo/web-0", "web", "198.18.100.1"))
	apply(b, store, c)
	return store, ref("demo/web-0"), subs
}

// BenchmarkDiffFullConfig is a new proxy's first response: its workload
// and the full state of each of its 20 services.
func BenchmarkDiffFullConfig(b *testing.B) {
	store, web, subs := benchDiffMesh(b)
	snap := store.Snapshot()
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := Diff(NewSent(), snap, web, subs)
		if len(resp.GetServices()) != len(subs) {
			b.Fatalf("%d services in the response, want %d", len(resp.GetServices()), len(subs))
		}
	}
}

// BenchmarkDiffEndpointChange is a subscriber's work for one endpoint
// change: the delta of the one service the watcher marked, against what
// the stream sent.
func BenchmarkDiffEndpointChange(b *testing.B) {
	store, web, subs := benchDiffMesh(b)
	sent := NewSent()
	_, patch := Diff(sent, store.Snapshot(), web, subs)
	sent.Apply(patch)
	apply(b, store, model.Changes{PutWorkloads: []*model.Workload{workload("demo/svc-07-3", "svc-07", "198.19.0.1")}})
	snap := store.Snapshot()
	check := []model.Ref{ref("demo/svc-07")}
	b.ReportAllocs()
	for b.Loop() {
		resp, _ := Diff(sent, snap, web, check)
		if u := resp.GetServices(); len(u) != 1 || len(u[0].GetUpserted()) != 1 {
			b.Fatalf("response %s, want one upserted endpoint", summary(resp))
		}
	}
}
