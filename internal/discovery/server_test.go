package discovery

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve runs a real gRPC server with the discovery service on loopback;
// each setup function configures the server before it serves.
func serve(t *testing.T, store *model.Store, setup ...func(*Server)) (*Server, meshv1.DiscoveryClient) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(store, testLogger(t))
	for _, f := range setup {
		f(srv)
	}
	gs := grpc.NewServer(ServerOptions()...)
	meshv1.RegisterDiscoveryServer(gs, srv)
	go gs.Serve(lis) //nolint:errcheck // ends with Stop
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		srv.Close()
		gs.Stop()
		// Stop does not wait for handlers: wait until every stream has
		// ended (and logged its end) before the test's logger goes away.
		for deadline := time.Now().Add(5 * time.Second); len(srv.Connected()) > 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	})
	return srv, meshv1.NewDiscoveryClient(conn)
}

type testStream struct {
	t  *testing.T
	st grpc.BidiStreamingClient[meshv1.StreamRequest, meshv1.StreamResponse]
	ch chan *meshv1.StreamResponse
}

func open(t *testing.T, c meshv1.DiscoveryClient, first *meshv1.StreamRequest) *testStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := c.Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(first); err != nil {
		t.Fatal(err)
	}
	ts := &testStream{t: t, st: st, ch: make(chan *meshv1.StreamResponse, 100)}
	go func() {
		defer close(ts.ch)
		for {
			resp, err := st.Recv()
			if err != nil {
				return
			}
			ts.ch <- resp
		}
	}()
	return ts
}

func (ts *testStream) next() *meshv1.StreamResponse {
	ts.t.Helper()
	select {
	case resp, ok := <-ts.ch:
		if !ok {
			ts.t.Fatal("stream ended")
		}
		return resp
	case <-time.After(10 * time.Second):
		ts.t.Fatal("no response")
	}
	return nil
}

func (ts *testStream) expect(want string) *meshv1.StreamResponse {
	ts.t.Helper()
	resp := ts.next()
	if got := summary(resp); got != want {
		ts.t.Fatalf("got  %q\nwant %q", got, want)
	}
	return resp
}

// quiet checks that nothing arrives for a while.
func (ts *testStream) quiet() {
	ts.t.Helper()
	select {
	case resp := <-ts.ch:
		ts.t.Fatalf("unexpected response %q", summary(resp))
	case <-time.After(200 * time.Millisecond):
	}
}

func (ts *testStream) send(req *meshv1.StreamRequest) {
	ts.t.Helper()
	if err := ts.st.Send(req); err != nil {
		ts.t.Fatal(err)
	}
}

func refs(rs ...string) []*meshv1.Ref {
	var out []*meshv1.Ref
	for _, r := range rs {
		out = append(out, wire.RefToProto(ref(r)))
	}
	return out
}

func TestStreamFirstRequestMustNameWorkload(t *testing.T) {
	for _, tc := range []struct {
		desc string
		req  *meshv1.StreamRequest
	}{
		{"no workload", &meshv1.StreamRequest{Subscribe: refs("shop/cart")}},
		{"invalid workload", &meshv1.StreamRequest{Workload: &meshv1.Ref{Namespace: "shop", Name: "Web!"}}},
		{"invalid subscription", &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web")), Subscribe: []*meshv1.Ref{{Name: "x"}}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, c := serve(t, model.NewStore())
			st, err := c.Stream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(tc.req); err != nil {
				t.Fatal(err)
			}
			_, err = st.Recv()
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v, want InvalidArgument", err)
			}
		})
	}
}

func TestStreamFullThenDeltas(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1"), workload("shop/cart-1", "cart", "198.18.0.2")},
	})
	_, c := serve(t, store)
	ts := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1")), Subscribe: refs("shop/cart", "shop/prices")})
	first := ts.expect("workload shop/web-1 198.18.0.1; shop/cart full svc(1 ports) +shop/cart-1@198.18.0.2; shop/prices gone")
	if first.GetVersion() != store.Snapshot().Version {
		t.Errorf("version %d, want %d", first.GetVersion(), store.Snapshot().Version)
	}

	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-2", "cart", "198.18.0.3")}})
	ts.expect("shop/cart delta +shop/cart-2@198.18.0.3")
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.4")}})
	ts.expect("shop/cart delta +shop/cart-1@198.18.0.4")
	apply(t, store, model.Changes{DeleteWorkloads: []model.Ref{ref("shop/cart-2")}})
	ts.expect("shop/cart delta -shop/cart-2")

	// Changes to services the stream does not subscribe to send nothing.
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/other", "cart")}})
	ts.quiet()

	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}})
	ts.expect("shop/prices full svc(1 ports)")
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.5")}})
	ts.expect("workload shop/web-1 198.18.0.5")
}

func TestStreamSubscribeAndUnsubscribe(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart"), service("shop/prices", "prices")},
		PutWorkloads: []*model.Workload{workload("shop/cart-1", "cart", "198.18.0.2"), workload("shop/prices-1", "prices", "198.18.0.3")},
	})
	srv, c := serve(t, store)
	ts := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1"))})
	ts.expect("")

	ts.send(&meshv1.StreamRequest{Subscribe: refs("shop/cart")})
	ts.expect("shop/cart full svc(1 ports) +shop/cart-1@198.18.0.2")
	ts.send(&meshv1.StreamRequest{Subscribe: refs("shop/prices", "shop/cart")})
	ts.expect("shop/prices full svc(1 ports) +shop/prices-1@198.18.0.3")

	ts.send(&meshv1.StreamRequest{Unsubscribe: refs("shop/cart")})
	waitFor(t, func() bool { return len(srv.Connected()) == 1 && len(srv.Connected()[0].Subscriptions) == 1 })
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-2", "cart", "198.18.0.4")}})
	ts.quiet()

	// Dropping and adding in one request asks for a fresh full state.
	ts.send(&meshv1.StreamRequest{Unsubscribe: refs("shop/prices"), Subscribe: refs("shop/prices")})
	ts.expect("shop/prices full svc(1 ports) +shop/prices-1@198.18.0.3")
	ts.send(&meshv1.StreamRequest{Subscribe: refs("shop/cart")})
	ts.expect("shop/cart full svc(1 ports) +shop/cart-1@198.18.0.2 +shop/cart-2@198.18.0.4")

	// A later request may repeat the workload, not change it.
	ts.send(&meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/other"))})
	if _, ok := <-ts.ch; ok {
		t.Fatal("stream survived a change of workload")
	}
}

func TestStreamWorkloadAppearsLater(t *testing.T) {
	store := model.NewStore()
	_, c := serve(t, store)
	ts := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("vms/billing-1"))})
	ts.expect("")
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("vms/other", "x", "198.18.0.9")}})
	ts.quiet()
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("vms/billing-1", "billing", "198.18.0.8")}})
	ts.expect("workload vms/billing-1 198.18.0.8")
}

func TestConnectedAndClose(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/cart", "cart")}})
	srv, c := serve(t, store)
	a := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-2")), Subscribe: refs("shop/cart", "shop/a")})
	a.next()
	b := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1"))})
	b.next()

	got := srv.Connected()
	if len(got) != 2 || got[0].Workload != ref("shop/web-1") || got[1].Workload != ref("shop/web-2") {
		t.Fatalf("Connected() = %+v", got)
	}
	if subs := got[1].Subscriptions; len(subs) != 2 || subs[0] != ref("shop/a") || subs[1] != ref("shop/cart") {
		t.Errorf("subscriptions %v", subs)
	}
	if got[1].Version != store.Snapshot().Version || got[1].Since.IsZero() || got[1].Peer == "" {
		t.Errorf("info %+v", got[1])
	}

	a.st.CloseSend()
	waitFor(t, func() bool { return len(srv.Connected()) == 1 })

	srv.Close()
	if _, ok := <-b.ch; ok {
		t.Fatal("stream survived Close")
	}
	_, err := b.st.Recv()
	if status.Code(err) != codes.Unavailable {
		t.Errorf("after Close: %v, want Unavailable", err)
	}
	waitFor(t, func() bool { return len(srv.Connected()) == 0 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingStream is a server stream whose Send blocks until the test takes
// the response, to play a proxy that reads slowly.
type blockingStream struct {
	grpc.ServerStream
	ctx   context.Context
	first *meshv1.StreamRequest
	sent  chan *meshv1.StreamResponse
}

func (b *blockingStream) Context() context.Context { return b.ctx }
func (b *blockingStream) SetHeader(metadata.MD) error {
	return nil
}
func (b *blockingStream) Recv() (*meshv1.StreamRequest, error) {
	if f := b.first; f != nil {
		b.first = nil
		return f, nil
	}
	<-b.ctx.Done()
	return nil, io.EOF
}
func (b *blockingStream) Send(r *meshv1.StreamResponse) error {
	select {
	case b.sent <- r:
		return nil
	case <-b.ctx.Done():
		return b.ctx.Err()
	}
}

// TestSlowStreamCoalesces checks that a stream busy sending skips to the
// newest snapshot instead of queueing one response per snapshot.
func TestSlowStreamCoalesces(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/cart", "cart")}})
	srv := NewServer(store, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	bs := &blockingStream{ctx: ctx, sent: make(chan *meshv1.StreamResponse),
		first: &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1")), Subscribe: refs("shop/cart")}}
	done := make(chan error)
	go func() { done <- srv.Stream(bs) }()
	<-bs.sent // the full state

	// The first change gets the stream stuck in Send; the rest pile up.
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-0", "cart", "198.18.0.1")}})
	time.Sleep(50 * time.Millisecond)
	for i := range 50 {
		apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/cart-0", "cart", "198.18.0."+itoa(2+i))}})
	}
	final := store.Snapshot().Version
	waitFor(t, func() bool { return srv.current.Load().Version == final })

	if got := summary(<-bs.sent); got != "shop/cart delta +shop/cart-0@198.18.0.1" {
		t.Fatalf("first delta %q", got)
	}
	resp := <-bs.sent
	if got := summary(resp); got != "shop/cart delta +shop/cart-0@198.18.0.51" || resp.GetVersion() != final {
		t.Fatalf("coalesced delta %q at version %d, want the newest (version %d)", got, resp.GetVersion(), final)
	}
	select {
	case r := <-bs.sent:
		t.Fatalf("a stale snapshot was queued: %q", summary(r))
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
	<-done
	if len(srv.Connected()) != 0 {
		t.Error("stream still listed after it ended")
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// TestWatchWakesOnlyConcernedStreams checks the cost model: a change wakes
// the streams subscribed to what changed, and no others.
func TestWatchWakesOnlyConcernedStreams(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/a", "a"), service("shop/b", "b")}})
	srv := NewServer(store, testLogger(t))
	mk := func(name string, subs ...string) *stream {
		st := &stream{workload: ref("shop/" + name), notify: make(chan struct{}, 1), subs: map[model.Ref]struct{}{}, dirty: map[model.Ref]struct{}{}, dropped: map[model.Ref]struct{}{}}
		if err := srv.add(st); err != nil {
			t.Fatal(err)
		}
		if err := srv.update(st, &meshv1.StreamRequest{Subscribe: refs(subs...)}); err != nil {
			t.Fatal(err)
		}
		<-st.notify
		clear(st.dirty)
		return st
	}
	onA, onB := mk("x", "shop/a"), mk("y", "shop/b")
	defer srv.remove(onA)
	defer srv.remove(onB)

	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/a-1", "a", "198.18.0.1")}})
	select {
	case <-onA.notify:
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber of the changed service not woken")
	}
	onA.mu.Lock()
	_, marked := onA.dirty[ref("shop/a")]
	onA.mu.Unlock()
	if !marked {
		t.Error("changed service not marked")
	}
	select {
	case <-onB.notify:
		t.Error("a stream subscribed only to an unchanged service was woken")
	case <-time.After(100 * time.Millisecond):
	}
}

// BenchmarkWatch measures one model change reaching the streams that
// subscribe to it, with 2,000 streams of 10 subscriptions each over
// 10,000 services (the store's own Apply included).
func BenchmarkWatch(b *testing.B) {
	const nServices, nStreams, nSubs = 10_000, 2_000, 10
	store := model.NewStore()
	var c model.Changes
	for i := range nServices {
		c.PutServices = append(c.PutServices, service("ns/s"+itoa(i), "s"+itoa(i)))
	}
	apply(b, store, c)
	srv := NewServer(store, slog.New(slog.DiscardHandler))
	streams := benchStreams(b, srv, nStreams, func(i int) string { return "ns/w" + itoa(i) }, func(i int) []string {
		var subs []string
		for j := range nSubs {
			subs = append(subs, "ns/s"+itoa((i*nSubs+j)%nServices))
		}
		return subs
	})
	// Service 0 is subscribed to by streams 0 and 1000.
	benchChanges(b, store, streams[0], func(i int) model.Changes {
		return model.Changes{PutWorkloads: []*model.Workload{workload("ns/w", "s0", "198.18.0."+itoa(1+i%200))}}
	})
}

// TestStreamSubscribeAll: a stream that asks for every service gets the
// mesh's services at once, each new one as it comes, and their changes.
func TestStreamSubscribeAll(t *testing.T) {
	store := model.NewStore()
	apply(t, store, model.Changes{
		PutServices:  []*model.Service{service("shop/cart", "cart"), service("bank/ledger", "ledger")},
		PutWorkloads: []*model.Workload{workload("shop/web-1", "web", "198.18.0.1"), workload("shop/cart-1", "cart", "198.18.0.2")},
	})
	srv, c := serve(t, store)
	ts := open(t, c, &meshv1.StreamRequest{Workload: wire.RefToProto(ref("shop/web-1")), SubscribeAll: true})
	ts.expect("workload shop/web-1 198.18.0.1; bank/ledger full svc(1 ports); shop/cart full svc(1 ports) +shop/cart-1@198.18.0.2")

	apply(t, store, model.Changes{PutServices: []*model.Service{service("shop/prices", "prices")}})
	ts.expect("shop/prices full svc(1 ports)")
	apply(t, store, model.Changes{PutWorkloads: []*model.Workload{workload("shop/prices-1", "prices", "198.18.0.3")}})
	ts.expect("shop/prices delta +shop/prices-1@198.18.0.3")
	apply(t, store, model.Changes{DeleteServices: []model.Ref{ref("bank/ledger")}})
	ts.expect("bank/ledger gone")
	if subs := srv.Connected()[0].Subscriptions; len(subs) != 3 {
		t.Errorf("subscriptions %v", subs)
	}
}
