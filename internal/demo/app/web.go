package app

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/demo/fault"
)

//go:embed web.html
var webPage []byte

// WebConfig configures the web service.
type WebConfig struct {
	// CatalogURL is catalog's base URL, e.g. http://127.0.0.1:20300.
	CatalogURL string
	// CatalogH2C calls catalog with HTTP/2 prior knowledge instead of
	// HTTP/1.1 (only for calling catalog v2 directly, not through a proxy).
	CatalogH2C bool
	// AuditAddr is the audit service's host:port.
	AuditAddr string
	// Timeout bounds each upstream call; default 5s.
	Timeout time.Duration
	// Faults are the switches; nil starts with none.
	Faults *fault.Injector
	Log    *slog.Logger
}

// ProductsResponse is the body of web's GET /api/products.
type ProductsResponse struct {
	// CatalogVersion is the version of the catalog that answered, from its
	// VersionHeader.
	CatalogVersion string `json:"catalog_version"`
	// Products are passed through from catalog as it sent them.
	Products []json.RawMessage `json:"products"`
	// AuditSeq is the audit service's count after this request's entry.
	AuditSeq int64 `json:"audit_seq"`
}

// Web serves the demo's front page and GET /api/products.
type Web struct {
	cfg     WebConfig
	log     *slog.Logger
	catalog *url.URL
	client  *http.Client
}

// NewWeb returns a web service.
func NewWeb(cfg WebConfig) (*Web, error) {
	u, err := url.Parse(cfg.CatalogURL)
	if err != nil {
		return nil, fmt.Errorf("web: catalog url: %w", err)
	}
	if u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("web: catalog url %q: want http://host:port", cfg.CatalogURL)
	}
	if cfg.AuditAddr == "" {
		return nil, errors.New("web: audit address is required")
	}
	cfg.Timeout = orDefault(cfg.Timeout, 5*time.Second)
	cfg.Faults = faultsOrNone(cfg.Faults)
	return &Web{
		cfg:     cfg,
		log:     logger(cfg.Log, "web"),
		catalog: u.JoinPath("products"),
		client:  &http.Client{Transport: newTransport(cfg.CatalogH2C)},
	}, nil
}

// Handler is web's HTTP API, faults and control endpoint included.
func (wb *Web) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(webPage)
	})
	mux.HandleFunc("GET /api/products", wb.products)
	return wb.cfg.Faults.Middleware(mux)
}

// Serve serves HTTP/1.1 on ln until ctx ends.
func (wb *Web) Serve(ctx context.Context, ln net.Listener) error {
	wb.log.Info("web serving", "addr", ln.Addr().String(), "catalog", wb.cfg.CatalogURL, "audit", wb.cfg.AuditAddr)
	defer wb.client.CloseIdleConnections()
	return serveHTTP(ctx, newHTTPServer(wb.Handler(), http1Only()), ln)
}

func (wb *Web) products(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), wb.cfg.Timeout)
	defer cancel()
	cat, version, err := wb.fetchCatalog(ctx, r.Header)
	if err != nil {
		wb.log.Warn("catalog failed", "err", err)
		fault.WriteJSONError(w, http.StatusBadGateway, err)
		return
	}
	line := fmt.Sprintf("products version=%s count=%d remote=%s", version, len(cat.Products), r.RemoteAddr)
	seq, err := AppendAudit(ctx, wb.cfg.AuditAddr, line)
	if err != nil {
		wb.log.Warn("audit failed", "err", err)
		fault.WriteJSONError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, ProductsResponse{CatalogVersion: version, Products: cat.Products, AuditSeq: seq})
}

// catalogBody is catalog's answer with the products left as sent.
type catalogBody struct {
	Version  string            `json:"version"`
	Products []json.RawMessage `json:"products"`
}

// fetchCatalog calls catalog's GET /products, on behalf of a request with
// header served, and returns its body and the version that answered.
func (wb *Web) fetchCatalog(ctx context.Context, served http.Header) (catalogBody, string, error) {
	var body catalogBody
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wb.catalog.String(), nil)
	if err != nil {
		return body, "", fmt.Errorf("catalog: %w", err)
	}
	forwardTraceHeaders(req.Header, served)
	resp, err := wb.client.Do(req)
	if err != nil {
		return body, "", fmt.Errorf("catalog: %w", err)
	}
	defer resp.Body.Close()
	version := resp.Header.Get(VersionHeader)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return body, version, fmt.Errorf("catalog %s: status %d: %s", orDefault(version, "?"), resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return body, version, fmt.Errorf("catalog %s: decode: %w", orDefault(version, "?"), err)
	}
	return body, orDefault(version, body.Version), nil
}
