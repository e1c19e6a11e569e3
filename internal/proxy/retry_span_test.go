package proxy_test

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/trace"
)

// TestClientSpanCountsRetries: a request the RetryPolicy retried once
// (first attempt 503, second 200) must have weft.retries=1 on its client
// span, as the issue asks ("a span per hop with the mesh's attributes
// (identities, route, retries)").
func TestClientSpanCountsRetries(t *testing.T) {
	var hits atomic.Int64
	app := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hits.Add(1) == 1 {
			w.WriteHeader(503)
		}
	}))
	sink := &spanSink{}
	tr, err := trace.New(trace.Config{Exporter: sink, SampleRatio: 1, BatchTimeout: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Shutdown(context.Background()) })
	s := newServer(t, "api-0", model.WorkloadPort{Port: app, Protocol: model.ProtocolHTTP1})
	port := model.ServicePort{Port: 80, Protocol: model.ProtocolHTTP1}
	c := newClient(t, proxy.Options{Tracer: tr}, service(port), []uint32{80}, s.endpoint(map[uint32]uint32{80: app}))
	c.version++
	st := &model.ServiceState{Service: service(port), Endpoints: []*model.Endpoint{s.endpoint(map[uint32]uint32{80: app})},
		Traffic: &model.TrafficPolicy{Retry: retryPolicy(2, 0.5, 10)}}
	if err := c.proxy.Apply(&model.ProxyConfig{Version: c.version, Workload: c.wl, Services: map[model.Ref]*model.ServiceState{apiRef: st}}); err != nil {
		t.Fatal(err)
	}
	for _, sd := range c.proxy.ConfigDump().(proxy.Dump).Services {
		if want := st.Traffic.Retry.Key().String(); sd.Ref == apiRef.String() && !slices.Equal(sd.Policies, []string{want}) {
			t.Errorf("config dump of %s: policies %q, want [%q]", sd.Ref, sd.Policies, want)
		}
	}
	resp, err := h1Client().Get("http://" + c.addr(80) + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || hits.Load() != 2 {
		t.Fatalf("status %d after %d attempts, want 200 after 2", resp.StatusCode, hits.Load())
	}
	// The span ends when the proxy's handler returns, just after the
	// client has the answer.
	for deadline := time.Now().Add(5 * time.Second); tr.Stats().Spans == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if err := tr.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, sp := range sink.spans {
		if sp.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
			continue
		}
		for _, kv := range sp.GetAttributes() {
			if kv.GetKey() == trace.AttrRetries {
				if n := kv.GetValue().GetIntValue(); n != 1 {
					t.Errorf("client span: %s=%d, want 1", trace.AttrRetries, n)
				}
				return
			}
		}
		t.Fatalf("client span has no %s: %v", trace.AttrRetries, sp.GetAttributes())
	}
	t.Fatalf("no client span among %v", sink.spans)
}
