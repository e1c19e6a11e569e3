package app

import (
	"net/http"
	"testing"

	"github.com/weftmesh/weft/internal/demo/fault"
)

func TestCatalogVersions(t *testing.T) {
	s := startStack(t)
	tests := []struct {
		name       string
		url        string
		h2c        bool
		wantProto  int
		wantRating bool
	}{
		{name: "v1 over HTTP/1.1", url: s.catalogV1, wantProto: 1},
		{name: "v2 over h2c", url: s.catalogV2, h2c: true, wantProto: 2, wantRating: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body CatalogResponse
			resp := getJSON(t, client(t, tt.h2c), tt.url+"/products", &body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if resp.ProtoMajor != tt.wantProto {
				t.Fatalf("proto %s, want major %d", resp.Proto, tt.wantProto)
			}
			wantVersion := map[int]string{1: "v1", 2: "v2"}[tt.wantProto]
			if got := resp.Header.Get(VersionHeader); got != wantVersion || body.Version != wantVersion {
				t.Fatalf("version header %q, body %q; want %q", got, body.Version, wantVersion)
			}
			if len(body.Products) != len(catalogEntries) {
				t.Fatalf("%d products, want %d", len(body.Products), len(catalogEntries))
			}
			for _, p := range body.Products {
				if p.SKU == "" || p.Name == "" || p.PriceCents <= 0 || p.Stock < 0 {
					t.Errorf("product %+v", p)
				}
				if (p.Rating != nil) != tt.wantRating {
					t.Errorf("product %s: rating %v, want present %v", p.SKU, p.Rating, tt.wantRating)
				}
			}
		})
	}
}

func TestCatalogV2SpeaksOnlyH2C(t *testing.T) {
	s := startStack(t)
	resp, err := client(t, false).Get(s.catalogV2 + "/products")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("HTTP/1.1 to v2: status %d, want the h2c-only server to refuse", resp.StatusCode)
	}
}

func TestCatalogFaults(t *testing.T) {
	s := startStack(t)
	c := client(t, false)

	set(t, s.faults["catalog-v1"], fault.Settings{ErrorRate: 1})
	var e struct{ Error string }
	resp := getJSON(t, c, s.catalogV1+"/products", &e)
	if resp.StatusCode != http.StatusInternalServerError || e.Error == "" || resp.Header.Get(VersionHeader) != "v1" {
		t.Fatalf("error rate 1: status %d, error %q, version %q", resp.StatusCode, e.Error, resp.Header.Get(VersionHeader))
	}
	set(t, s.faults["catalog-v1"], fault.Settings{})

	// A failing upstream is a 502 with a JSON error.
	set(t, s.faults["stock"], fault.Settings{ErrorRate: 1})
	resp = getJSON(t, c, s.catalogV1+"/products", &e)
	if resp.StatusCode != http.StatusBadGateway || e.Error == "" {
		t.Fatalf("stock failing: status %d, error %q; want 502", resp.StatusCode, e.Error)
	}
	set(t, s.faults["stock"], fault.Settings{})
	if resp := getJSON(t, c, s.catalogV1+"/products", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("faults cleared: status %d", resp.StatusCode)
	}
}

func TestCatalogStockDown(t *testing.T) {
	c := newCatalog(t, CatalogConfig{Version: "v1", StockAddr: "127.0.0.1:1"})
	url := "http://" + serve(t, c.Serve)
	var e struct{ Error string }
	if resp := getJSON(t, client(t, false), url+"/products", &e); resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("stock down: status %d, want 502", resp.StatusCode)
	}
}
