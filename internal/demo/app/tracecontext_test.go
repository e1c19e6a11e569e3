package app

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	demov1 "github.com/weftmesh/weft/api/demo/v1"
)

// served is what a client sends to web or catalog: the trace context in
// every format the demo forwards (tracestate in two header lines, as W3C
// allows), and headers of the request's own that must stay behind.
var served = http.Header{
	"Traceparent":       {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
	"Tracestate":        {"congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7"},
	"B3":                {"4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"},
	"X-B3-Traceid":      {"4bf92f3577b34da6a3ce929d0e0e4736"},
	"X-B3-Spanid":       {"00f067aa0ba902b7"},
	"X-B3-Parentspanid": {"a3ce929d0e0e4736"},
	"X-B3-Sampled":      {"1"},
	"X-B3-Flags":        {"1"},
	"X-User":            {"alice"},
	"Authorization":     {"Bearer secret"},
}

// traceOnly is served with only its trace headers, names lower-cased.
func traceOnly() map[string][]string {
	want := map[string][]string{}
	for k, v := range served {
		if k != "X-User" && k != "Authorization" {
			want[strings.ToLower(k)] = v
		}
	}
	return want
}

// lowered is h with its names lower-cased, less the ones every request
// carries anyway.
func lowered(h map[string][]string, skip ...string) map[string][]string {
	out := map[string][]string{}
	for k, v := range h {
		if k = strings.ToLower(k); !slices.Contains(skip, k) {
			out[k] = v
		}
	}
	return out
}

func equalHeaders(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestWebForwardsTraceHeaders calls web with a trace context and checks
// that catalog gets it, and nothing else of the request: the trace
// headers are forwarded, X-User and Authorization are not.
func TestWebForwardsTraceHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	catalog := serve(t, func(ctx context.Context, ln net.Listener) error {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got <- r.Header.Clone()
			w.Header().Set(VersionHeader, "v1")
			writeJSON(w, http.StatusOK, CatalogResponse{Version: "v1"})
		})
		return serveHTTP(ctx, newHTTPServer(h, http1Only()), ln)
	})
	audit := serve(t, NewAudit(AuditConfig{}).Serve)
	web := startWeb(t, WebConfig{CatalogURL: "http://" + catalog, AuditAddr: audit})

	for _, tc := range []struct {
		desc string
		in   http.Header
		want map[string][]string
	}{
		{"trace context forwarded, nothing else", served, traceOnly()},
		{"no trace context, none made up", http.Header{"X-User": {"alice"}}, map[string][]string{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			getOK(t, web+"/api/products", tc.in)
			h := lowered(<-got, "user-agent", "accept-encoding")
			if !equalHeaders(h, tc.want) {
				t.Errorf("catalog got headers %v, want %v", h, tc.want)
			}
		})
	}
}

// TestCatalogForwardsTraceMetadata calls catalog with a trace context and
// checks that each of its gRPC calls to stock carries it as metadata, and
// nothing else of the request.
func TestCatalogForwardsTraceMetadata(t *testing.T) {
	var mu sync.Mutex
	var calls []metadata.MD
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		mu.Lock()
		calls = append(calls, md)
		mu.Unlock()
		return handler(ctx, req)
	}
	stock := serve(t, func(ctx context.Context, ln net.Listener) error {
		srv := grpc.NewServer(grpc.UnaryInterceptor(record))
		demov1.RegisterStockServer(srv, NewStock(StockConfig{}))
		go func() { <-ctx.Done(); srv.GracefulStop() }()
		return srv.Serve(ln)
	})
	catalog := "http://" + serve(t, newCatalog(t, CatalogConfig{Version: "v1", StockAddr: stock}).Serve)

	for _, tc := range []struct {
		desc string
		in   http.Header
		want map[string][]string
	}{
		{"trace context forwarded, nothing else", served, traceOnly()},
		{"no trace context, none made up", http.Header{"X-User": {"alice"}}, map[string][]string{}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			mu.Lock()
			calls = nil
			mu.Unlock()
			getOK(t, catalog+"/products", tc.in)
			mu.Lock()
			defer mu.Unlock()
			if len(calls) != len(catalogEntries) {
				t.Fatalf("stock got %d calls, want %d", len(calls), len(catalogEntries))
			}
			for _, md := range calls {
				if h := lowered(md, ":authority", "content-type", "user-agent", "grpc-accept-encoding", "grpc-timeout"); !equalHeaders(h, tc.want) {
					t.Errorf("stock got metadata %v, want %v", h, tc.want)
				}
			}
		})
	}
}

// getOK sends GET url with header h and fails t unless the answer is 200.
func getOK(t *testing.T, url string, h http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := client(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
}
