package control

import (
	"context"
	"crypto/x509"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func TestConnRedialsWhenTheCertificateChanges(t *testing.T) {
	var mu sync.Mutex
	var peers []string
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if p, ok := peer.FromContext(ctx); ok {
			mu.Lock()
			peers = append(peers, p.Addr.String())
			mu.Unlock()
		}
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	var leaf atomic.Pointer[x509.Certificate]
	leaf.Store(&x509.Certificate{SerialNumber: big.NewInt(1), NotAfter: time.Now().Add(time.Hour)})
	c := NewConn(ln.Addr().String(), insecure.NewCredentials(), leaf.Load)
	defer c.Close()
	check := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	check()
	check()
	leaf.Store(&x509.Certificate{SerialNumber: big.NewInt(2), NotAfter: time.Now().Add(time.Hour)})
	check()
	mu.Lock()
	defer mu.Unlock()
	if len(peers) != 3 || peers[0] != peers[1] || peers[1] == peers[2] {
		t.Fatalf("calls came from %v: want the first two on one connection, the third on a new one", peers)
	}
}
