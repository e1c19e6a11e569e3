package pool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingDialer is the Dialer seam as the identity work will use it: it
// sees every connection the pool opens.
type countingDialer struct {
	net.Dialer
	dials atomic.Int32
}

func (d *countingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	return d.Dialer.DialContext(ctx, network, addr)
}

// peerServer is an h2c server standing in for a peer proxy's inbound.
func peerServer(t *testing.T, h http.HandlerFunc) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns atomic.Int32
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: h, Protocols: &protos, ConnState: func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			conns.Add(1)
		case http.StateClosed, http.StateHijacked:
			conns.Add(-1)
		}
	}}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), &conns
}

func get(t *testing.T, p *Pool, addr string) {
	t.Helper()
	if _, err := fetch(p, addr); err != nil {
		t.Fatal(err)
	}
}

// fetch makes a GET request to the peer at addr and returns the body.
func fetch(p *Pool, addr string) (string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	resp, err := p.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("RoundTrip: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func TestConcurrentRequestsShareOneConnection(t *testing.T) {
	release := make(chan struct{})
	var inflight atomic.Int32
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		<-release
		w.Write([]byte("ok"))
	})
	d := &countingDialer{}
	p := New(Options{Dialer: d})
	defer p.Close()
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() { get(t, p, addr) })
	}
	deadline := time.Now().Add(5 * time.Second)
	for inflight.Load() < 50 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := d.dials.Load(); n != 1 {
		t.Fatalf("50 concurrent requests dialed %d connections, want 1", n)
	}
	if got := p.Peers()[addr]; got != 1 {
		t.Fatalf("Peers()[%s] = %d, want 1", addr, got)
	}
}

func TestRetainClosesRetiredPeers(t *testing.T) {
	ok := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }
	a, connsA := peerServer(t, ok)
	b, connsB := peerServer(t, ok)
	p := New(Options{})
	defer p.Close()
	get(t, p, a)
	get(t, p, b)
	p.Retain(map[string]bool{a: true})
	if _, held := p.Peers()[b]; held {
		t.Fatal("pool still lists the retired peer")
	}
	deadline := time.Now().Add(5 * time.Second)
	for connsB.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the retired peer's idle connection was not closed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if connsA.Load() != 1 {
		t.Fatalf("the kept peer has %d connections, want 1", connsA.Load())
	}
	get(t, p, a)
}

func TestRetainWaitsForStreamsInFlight(t *testing.T) {
	release := make(chan struct{})
	addr, _ := peerServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Write([]byte("finished"))
	})
	p := New(Options{})
	defer p.Close()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		resp, err := p.RoundTrip(req)
		if err == nil {
			var b []byte
			b, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if err == nil && string(b) != "finished" {
				err = errors.New("body " + string(b))
			}
		}
		done <- err
	}()
	for p.Peers()[addr] == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	p.Retain(nil)
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("request in flight on a retired connection: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := New(Options{DialTimeout: time.Second})
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	_, err := p.RoundTrip(req)
	var de *DialError
	if !errors.As(err, &de) || de.Addr != addr {
		t.Fatalf("RoundTrip to a closed port = %v, want a *DialError for %s", err, addr)
	}
	p.Close()
	if _, err := p.RoundTrip(req); !errors.Is(err, ErrClosed) {
		t.Fatalf("RoundTrip after Close = %v, want ErrClosed", err)
	}
}

// dialFunc is a Dialer made of a function.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}

// A request bound to a peer before Retain retired it still completes, but
// the pool keeps no connection to that peer afterwards, whether the
// request came after Retain or Retain came while its dial was under way.
func TestRetiredPeerGetsNoPooledConnection(t *testing.T) {
	tests := []struct {
		desc             string
		retireDuringDial bool
	}{
		{desc: "request after Retain"},
		{desc: "Retain during the dial", retireDuringDial: true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			ok := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }
			kept, _ := peerServer(t, ok)
			gone, goneConns := peerServer(t, ok)
			dialing, release := make(chan struct{}, 10), make(chan struct{})
			if !tc.retireDuringDial {
				close(release)
			}
			p := New(Options{Dialer: dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == gone {
					dialing <- struct{}{}
					<-release
				}
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			})})
			defer p.Close()
			get(t, p, kept)
			keep := map[string]bool{kept: true}
			if !tc.retireDuringDial {
				p.Retain(keep)
			}
			done := make(chan error, 1)
			go func() {
				body, err := fetch(p, gone)
				if err == nil && body != "ok" {
					err = fmt.Errorf("body %q, want ok", body)
				}
				done <- err
			}()
			if tc.retireDuringDial {
				select {
				case <-dialing:
				case <-time.After(5 * time.Second):
					t.Fatal("the request never dialed")
				}
				p.Retain(keep)
				close(release)
			}
			if err := <-done; err != nil {
				t.Fatalf("request to the retired peer: %v", err)
			}
			if n, held := p.Peers()[gone]; held {
				t.Fatalf("pool holds %d connections to the retired peer", n)
			}
			deadline := time.Now().Add(5 * time.Second)
			for goneConns.Load() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections to the retired peer are still open", goneConns.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := p.Peers()[kept]; n != 1 {
				t.Fatalf("pool holds %d connections to the kept peer, want 1", n)
			}
		})
	}
}
