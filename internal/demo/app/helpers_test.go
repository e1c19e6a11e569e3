package app

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/weftmesh/weft/internal/demo/fault"
)

// serve starts fn on a fresh loopback port and returns the address; the
// server is stopped, and must have ended cleanly, when the test ends.
func serve(t *testing.T, fn func(context.Context, net.Listener) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server on %s: %v", ln.Addr(), err)
		}
	})
	return ln.Addr().String()
}

func TestMain(m *testing.M) {
	flag.Parse()
	if !testing.Verbose() {
		slog.SetDefault(slog.New(slog.DiscardHandler))
	}
	os.Exit(m.Run())
}

func set(t *testing.T, in *fault.Injector, s fault.Settings) {
	t.Helper()
	if err := in.Set(s); err != nil {
		t.Fatal(err)
	}
}

func injector(t *testing.T, s fault.Settings) *fault.Injector {
	t.Helper()
	in, err := fault.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// stack is catalog v1 and v2, stock and audit, started for real.
type stack struct {
	stockAddr, auditAddr string
	catalogV1, catalogV2 string // base URLs
	faults               map[string]*fault.Injector
	audit                *Audit
}

func startStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{faults: map[string]*fault.Injector{}}
	for _, name := range []string{"stock", "audit", "catalog-v1", "catalog-v2"} {
		s.faults[name] = injector(t, fault.Settings{})
	}
	s.stockAddr = serve(t, NewStock(StockConfig{Faults: s.faults["stock"]}).Serve)
	s.audit = NewAudit(AuditConfig{Faults: s.faults["audit"]})
	s.auditAddr = serve(t, s.audit.Serve)
	s.catalogV1 = "http://" + serve(t, newCatalog(t, CatalogConfig{Version: "v1", StockAddr: s.stockAddr, Faults: s.faults["catalog-v1"]}).Serve)
	s.catalogV2 = "http://" + serve(t, newCatalog(t, CatalogConfig{Version: "v2", H2C: true, StockAddr: s.stockAddr, Faults: s.faults["catalog-v2"]}).Serve)
	return s
}

func newCatalog(t *testing.T, cfg CatalogConfig) *Catalog {
	t.Helper()
	c, err := NewCatalog(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// client returns an HTTP client speaking only HTTP/1.1, or only h2c.
func client(t *testing.T, h2c bool) *http.Client {
	t.Helper()
	tr := newTransport(h2c)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// getJSON GETs url, decodes a JSON body into v (if non-nil) and returns the
// response with its body closed.
func getJSON(t *testing.T, c *http.Client, url string, v any) *http.Response {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: status %d, body %q: %v", url, resp.StatusCode, b, err)
		}
	}
	return resp
}
