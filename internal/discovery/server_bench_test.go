package discovery

import (
	"fmt"
	"log/slog"
	"testing"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
)

// BenchmarkWatchEndpointChange is the control plane's work for one
// endpoint change at the scale of issue 7, up to the wake-up of the
// stream that subscribes to the service: the store publishing the
// snapshot (10,000 services in 100 namespaces, 10 endpoints each) and
// the watcher marking the streams it concerns among 2,000, each
// subscribed to 10 services. BenchmarkWatch does the same with every
// service in one namespace.
func BenchmarkWatchEndpointChange(b *testing.B) {
	const namespaces, perNS, perSvc, nStreams, nSubs = 100, 100, 10, 2_000, 10
	store := model.NewStore()
	for n := range namespaces {
		var c model.Changes
		for i := range perNS {
			name := fmt.Sprintf("s%d", n*perNS+i)
			c.PutServices = append(c.PutServices, service(fmt.Sprintf("ns%d/%s", n, name), name))
			for w := range perSvc {
				c.PutWorkloads = append(c.PutWorkloads, workload(fmt.Sprintf("ns%d/%s-%d", n, name, w), name, "198.18.0.1"))
			}
		}
		apply(b, store, c)
	}
	srv := NewServer(store, slog.New(slog.DiscardHandler))
	streams := benchStreams(b, srv, nStreams, func(i int) string { return fmt.Sprintf("ns%d/w%d", i%namespaces, i) }, func(i int) []string {
		var subs []string
		for j := range nSubs {
			s := (i*nSubs + j) % (namespaces * perNS)
			subs = append(subs, fmt.Sprintf("ns%d/s%d", s/perNS, s))
		}
		return subs
	})
	// Service ns0/s0 is subscribed to by stream 0.
	b.ReportAllocs()
	benchChanges(b, store, streams[0], func(i int) model.Changes {
		return model.Changes{PutWorkloads: []*model.Workload{workload("ns0/s0-1", "s0", fmt.Sprintf("198.19.%d.%d", i/250%250, 1+i%250))}}
	})
}

// benchStreams opens n streams on srv, stream i for workload workloadOf(i)
// subscribed to subs(i), each with its first config taken; they are
// removed when b ends.
func benchStreams(b *testing.B, srv *Server, n int, workloadOf func(int) string, subs func(int) []string) []*stream {
	b.Helper()
	var streams []*stream
	for i := range n {
		st := &stream{workload: ref(workloadOf(i)), notify: make(chan struct{}, 1),
			subs: map[model.Ref]struct{}{}, dirty: map[model.Ref]struct{}{}, dropped: map[model.Ref]struct{}{}}
		if err := srv.add(st); err != nil {
			b.Fatal(err)
		}
		if err := srv.update(st, &meshv1.StreamRequest{Subscribe: refs(subs(i)...)}); err != nil {
			b.Fatal(err)
		}
		<-st.notify
		streams = append(streams, st)
	}
	b.Cleanup(func() {
		for _, st := range streams {
			srv.remove(st)
		}
	})
	return streams
}

// benchChanges times change(i), applied to store, reaching watcher.
func benchChanges(b *testing.B, store *model.Store, watcher *stream, change func(int) model.Changes) {
	b.ResetTimer()
	for i := range b.N {
		apply(b, store, change(i))
		<-watcher.notify
	}
}
