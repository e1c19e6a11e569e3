package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	demov1 "github.com/weftmesh/weft/api/demo/v1"
	"github.com/weftmesh/weft/internal/demo/fault"
)

// minWatchInterval is the shortest interval WatchStock honours.
const minWatchInterval = 10 * time.Millisecond

// StockConfig configures the stock service.
type StockConfig struct {
	// WatchInterval is WatchStock's interval when the request names none;
	// default 500ms.
	WatchInterval time.Duration
	// Faults are the switches; nil starts with none.
	Faults *fault.Injector
	Log    *slog.Logger
}

// Stock is the gRPC stock service. Its levels drift a little on every read,
// so a watch shows movement.
type Stock struct {
	demov1.UnimplementedStockServer

	cfg    StockConfig
	log    *slog.Logger
	mu     sync.Mutex
	levels map[string]int64
	// stopping is closed when Serve begins to stop, to end open watches.
	stopping chan struct{}
	stopOnce sync.Once
}

var _ demov1.StockServer = (*Stock)(nil)

// NewStock returns a stock service with the demo's initial inventory.
func NewStock(cfg StockConfig) *Stock {
	cfg.WatchInterval = max(orDefault(cfg.WatchInterval, 500*time.Millisecond), minWatchInterval)
	cfg.Faults = faultsOrNone(cfg.Faults)
	return &Stock{
		cfg:      cfg,
		log:      logger(cfg.Log, "stock"),
		levels:   maps.Clone(initialStock),
		stopping: make(chan struct{}),
	}
}

// Serve serves gRPC on ln until ctx ends: the Stock service with faults, and
// the standard health and reflection services without.
func (s *Stock) Serve(ctx context.Context, ln net.Listener) error {
	prefix := "/" + demov1.Stock_ServiceDesc.ServiceName + "/"
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(s.cfg.Faults.UnaryServerInterceptor(prefix)),
		grpc.ChainStreamInterceptor(s.cfg.Faults.StreamServerInterceptor(prefix)),
	)
	demov1.RegisterStockServer(srv, s)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	reflection.Register(srv)

	s.log.Info("stock serving", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve grpc on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.stopOnce.Do(func() { close(s.stopping) })
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownGrace):
		srv.Stop()
		<-stopped
	}
	// ErrServerStopped: the stop came before Serve had started.
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("serve grpc on %s: %w", ln.Addr(), err)
	}
	return nil
}

// GetStock returns the current level of one SKU.
func (s *Stock) GetStock(_ context.Context, req *demov1.GetStockRequest) (*demov1.GetStockResponse, error) {
	lvl, err := s.read(req.GetSku())
	if err != nil {
		return nil, err
	}
	return &demov1.GetStockResponse{Level: lvl}, nil
}

// WatchStock sends the level of one SKU now and then every interval until
// the client cancels, its deadline passes or the server stops.
func (s *Stock) WatchStock(req *demov1.WatchStockRequest, stream grpc.ServerStreamingServer[demov1.StockLevel]) error {
	interval := s.cfg.WatchInterval
	if ms := req.GetIntervalMs(); ms > 0 {
		interval = max(time.Duration(ms)*time.Millisecond, minWatchInterval)
	}
	ctx := stream.Context()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		lvl, err := s.read(req.GetSku())
		if err != nil {
			return err
		}
		if err := stream.Send(lvl); err != nil {
			return err // already a status: the stream is gone
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.stopping:
			return status.Error(codes.Unavailable, "stock: server stopping")
		}
	}
}

// read returns a SKU's level after one step of drift.
func (s *Stock) read(sku string) (*demov1.StockLevel, error) {
	if sku == "" {
		return nil, status.Error(codes.InvalidArgument, "sku: required")
	}
	s.mu.Lock()
	q, ok := s.levels[sku]
	if ok {
		q = max(q+rand.Int64N(5)-2, 0)
		s.levels[sku] = q
	}
	s.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sku %q: unknown", sku)
	}
	return &demov1.StockLevel{Sku: sku, Quantity: q, ObservedAt: timestamppb.Now()}, nil
}
