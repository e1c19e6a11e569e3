package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/demo/fault"
)

func startWeb(t *testing.T, cfg WebConfig) string {
	t.Helper()
	w, err := NewWeb(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return "http://" + serve(t, w.Serve)
}

func TestWebEndToEnd(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name        string
		catalogURL  string
		h2c         bool
		wantVersion string
		wantRating  bool
	}{
		{name: "catalog v1", catalogURL: s.catalogV1, wantVersion: "v1"},
		{name: "catalog v2 over h2c", catalogURL: s.catalogV2, h2c: true, wantVersion: "v2", wantRating: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web := startWeb(t, WebConfig{CatalogURL: tt.catalogURL, CatalogH2C: tt.h2c, AuditAddr: s.auditAddr})
			c := client(t, false)
			for range 3 {
				before := s.audit.Count()
				var body ProductsResponse
				resp := getJSON(t, c, web+"/api/products", &body)
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
					t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
				}
				if body.CatalogVersion != tt.wantVersion {
					t.Fatalf("catalog_version %q, want %q", body.CatalogVersion, tt.wantVersion)
				}
				if body.AuditSeq <= before || s.audit.Count() != before+1 {
					t.Fatalf("audit_seq %d, count %d -> %d: want one entry appended", body.AuditSeq, before, s.audit.Count())
				}
				if len(body.Products) != len(catalogEntries) {
					t.Fatalf("%d products, want %d", len(body.Products), len(catalogEntries))
				}
				for _, raw := range body.Products {
					var p Product
					if err := json.Unmarshal(raw, &p); err != nil {
						t.Fatal(err)
					}
					if p.SKU == "" || (p.Rating != nil) != tt.wantRating {
						t.Fatalf("product %s", raw)
					}
				}
			}
		})
	}
}

func TestWebPage(t *testing.T) {
	s := startStack(t)
	web := startWeb(t, WebConfig{CatalogURL: s.catalogV1, AuditAddr: s.auditAddr})
	resp, err := http.Get(web + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(b), "api/products") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := getJSON(t, http.DefaultClient, web+"/nope", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /nope: %d, want 404", resp.StatusCode)
	}
}

func TestWebUpstreamErrors(t *testing.T) {
	s := startStack(t)
	web := startWeb(t, WebConfig{CatalogURL: s.catalogV1, AuditAddr: s.auditAddr})
	tests := []struct {
		name   string
		faulty string // which upstream fails every request
		want   string // in the error
	}{
		{name: "catalog fails", faulty: "catalog-v1", want: "catalog v1: status 500"},
		{name: "stock fails behind catalog", faulty: "stock", want: "status 502"},
		{name: "audit closes the connection", faulty: "audit", want: "audit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set(t, s.faults[tt.faulty], fault.Settings{ErrorRate: 1})
			defer set(t, s.faults[tt.faulty], fault.Settings{})
			var e struct{ Error string }
			resp := getJSON(t, http.DefaultClient, web+"/api/products", &e)
			if resp.StatusCode != http.StatusBadGateway || !strings.Contains(e.Error, tt.want) {
				t.Fatalf("status %d, error %q; want 502 with %q", resp.StatusCode, e.Error, tt.want)
			}
		})
	}
	if resp := getJSON(t, http.DefaultClient, web+"/api/products", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("faults cleared: status %d", resp.StatusCode)
	}
}

func TestWebUpstreamDown(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name string
		cfg  WebConfig
	}{
		{name: "catalog down", cfg: WebConfig{CatalogURL: "http://127.0.0.1:1", AuditAddr: s.auditAddr}},
		{name: "audit down", cfg: WebConfig{CatalogURL: s.catalogV1, AuditAddr: "127.0.0.1:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e struct{ Error string }
			resp := getJSON(t, http.DefaultClient, startWeb(t, tt.cfg)+"/api/products", &e)
			if resp.StatusCode != http.StatusBadGateway || e.Error == "" {
				t.Fatalf("status %d, error %q; want 502", resp.StatusCode, e.Error)
			}
		})
	}
}

// TestWebRuntimeFaults switches web's own faults through its control
// endpoint, without a restart.
func TestWebRuntimeFaults(t *testing.T) {
	s := startStack(t)
	in := injector(t, fault.Settings{})
	web := startWeb(t, WebConfig{CatalogURL: s.catalogV1, AuditAddr: s.auditAddr, Faults: in})
	control := func(query string) {
		t.Helper()
		resp, err := http.Post(web+fault.ControlPath+"?"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("control %s: status %d", query, resp.StatusCode)
		}
	}
	count := func() (failed int) {
		for range 20 {
			if resp := getJSON(t, http.DefaultClient, web+"/api/products", nil); resp.StatusCode != http.StatusOK {
				failed++
			}
		}
		return failed
	}
	control("error_rate=1")
	if n := count(); n != 20 {
		t.Fatalf("error rate 1: %d of 20 failed, want all", n)
	}
	control("error_rate=0&latency=60ms")
	start := time.Now()
	if n := count(); n != 0 {
		t.Fatalf("error rate 0: %d of 20 failed, want none", n)
	}
	if d := time.Since(start); d < 20*60*time.Millisecond {
		t.Fatalf("20 requests took %s, want >= 1.2s with 60ms latency each", d)
	}
}

func TestNewWebRejectsBadConfig(t *testing.T) {
	for _, cfg := range []WebConfig{
		{CatalogURL: "127.0.0.1:80", AuditAddr: "127.0.0.1:1"},
		{CatalogURL: "ftp://127.0.0.1", AuditAddr: "127.0.0.1:1"},
		{CatalogURL: "http://127.0.0.1:80"},
	} {
		if _, err := NewWeb(cfg); err == nil {
			t.Errorf("NewWeb(%+v) accepted", cfg)
		}
	}
}

func TestControlEndpointWithoutInjector(t *testing.T) {
	s := startStack(t)
	web := startWeb(t, WebConfig{CatalogURL: s.catalogV1, AuditAddr: s.auditAddr}) // no Faults
	resp, err := http.Post(web+fault.ControlPath+"?error_rate=1", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("control: status %d", resp.StatusCode)
	}
	if resp := getJSON(t, http.DefaultClient, web+"/api/products", nil); resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("after error_rate=1: status %d, want 500", resp.StatusCode)
	}
}
