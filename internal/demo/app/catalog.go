package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	demov1 "github.com/weftmesh/weft/api/demo/v1"
	"github.com/weftmesh/weft/internal/demo/fault"
)

// CatalogConfig configures the catalog service.
type CatalogConfig struct {
	// Version labels the answers (header and body). Every version other
	// than "v1" adds ratings, so a traffic split is visible.
	Version string
	// H2C serves HTTP/2 with prior knowledge instead of HTTP/1.1.
	H2C bool
	// StockAddr is the stock service's gRPC address, host:port.
	StockAddr string
	// StockTimeout bounds each GetStock call; default 2s.
	StockTimeout time.Duration
	// Faults are the switches; nil starts with none.
	Faults *fault.Injector
	Log    *slog.Logger
}

// Catalog serves GET /products, asking stock for each product's level.
type Catalog struct {
	cfg   CatalogConfig
	log   *slog.Logger
	conn  *grpc.ClientConn
	stock demov1.StockClient
}

// NewCatalog returns a catalog; it connects to stock lazily. Close it.
func NewCatalog(cfg CatalogConfig) (*Catalog, error) {
	if cfg.Version == "" {
		return nil, errors.New("catalog: version is required")
	}
	if cfg.StockAddr == "" {
		return nil, errors.New("catalog: stock address is required")
	}
	cfg.StockTimeout = orDefault(cfg.StockTimeout, 2*time.Second)
	cfg.Faults = faultsOrNone(cfg.Faults)
	conn, err := grpc.NewClient(cfg.StockAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("catalog: stock client for %s: %w", cfg.StockAddr, err)
	}
	return &Catalog{
		cfg:   cfg,
		log:   logger(cfg.Log, "catalog").With("version", cfg.Version),
		conn:  conn,
		stock: demov1.NewStockClient(conn),
	}, nil
}

// Close closes the connection to stock.
func (c *Catalog) Close() error { return c.conn.Close() }

// Handler is catalog's HTTP API, faults and control endpoint included.
func (c *Catalog) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /products", c.products)
	next := c.cfg.Faults.Middleware(mux)
	// The version header goes on every answer, injected faults included,
	// so a split's failures can be told apart.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, c.cfg.Version)
		next.ServeHTTP(w, r)
	})
}

// Serve serves on ln, h2c or HTTP/1.1 as configured, until ctx ends.
func (c *Catalog) Serve(ctx context.Context, ln net.Listener) error {
	p := http1Only()
	if c.cfg.H2C {
		p = h2cOnly()
	}
	c.log.Info("catalog serving", "addr", ln.Addr().String(), "h2c", c.cfg.H2C, "stock", c.cfg.StockAddr)
	return serveHTTP(ctx, newHTTPServer(c.Handler(), p), ln)
}

func (c *Catalog) products(w http.ResponseWriter, r *http.Request) {
	out := CatalogResponse{Version: c.cfg.Version, Products: make([]Product, len(catalogEntries))}
	errs := make([]error, len(catalogEntries))
	ctx := withTraceMetadata(r.Context(), r.Header)
	var wg sync.WaitGroup
	for i, e := range catalogEntries {
		out.Products[i] = Product{SKU: e.sku, Name: e.name, PriceCents: e.price}
		if c.cfg.Version != "v1" {
			out.Products[i].Rating = &e.rating
		}
		wg.Go(func() {
			out.Products[i].Stock, errs[i] = c.level(ctx, e.sku)
		})
	}
	wg.Wait()
	if err := firstOf(errs); err != nil {
		c.log.Warn("stock failed", "err", err)
		fault.WriteJSONError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (c *Catalog) level(ctx context.Context, sku string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.StockTimeout)
	defer cancel()
	resp, err := c.stock.GetStock(ctx, &demov1.GetStockRequest{Sku: sku})
	if err != nil {
		return 0, fmt.Errorf("stock %s: %w", sku, err)
	}
	return resp.GetLevel().GetQuantity(), nil
}

// firstOf returns nil if every lookup succeeded, else the first error and
// how many failed, on one line.
func firstOf(errs []error) error {
	var first error
	n := 0
	for _, err := range errs {
		if err != nil {
			first = cmp.Or(first, err)
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return fmt.Errorf("%d of %d stock lookups failed, first: %w", n, len(errs), first)
}
