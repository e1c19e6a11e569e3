package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy/pool"
)

// peer serves CONNECT like an inbound proxy: each stream is piped to a
// fresh connection to app.
func peer(t *testing.T, app string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "want CONNECT", http.StatusMethodNotAllowed)
			return
		}
		c, err := net.Dial("tcp", app)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		Serve(w, r, c.(*net.TCPConn))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func app(t *testing.T, handle func(*net.TCPConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().String()
}

// through returns a client connection whose bytes travel
// client -> Pipe -> CONNECT stream -> Serve -> app.
func through(t *testing.T, appAddr string) *net.TCPConn {
	t.Helper()
	p := pool.New(pool.Options{})
	t.Cleanup(func() { p.Close() })
	peerAddr := peer(t, appAddr)
	a, b := tcpPair(t)
	s, err := Dial(context.Background(), p, peerAddr, http.Header{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	go Pipe(b, s, time.Second)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	return a
}

func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

func TestClientHalfClose(t *testing.T) {
	// The app answers only after EOF: the client's half-close must cross.
	c := through(t, app(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	}))
	c.Write([]byte("hello"))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "HELLO" {
		t.Fatalf("got %q, %v; want HELLO", got, err)
	}
}

func TestServerFinishesFirst(t *testing.T) {
	c := through(t, app(t, func(c *net.TCPConn) {
		c.Write([]byte("bye"))
	}))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "bye" {
		t.Fatalf("got %q, %v; want bye then EOF", got, err)
	}
}

func TestBulkBothWays(t *testing.T) {
	c := through(t, app(t, func(c *net.TCPConn) { io.Copy(c, c) }))
	payload := strings.Repeat("0123456789", 300_000)
	go func() {
		c.Write([]byte(payload))
		c.CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != payload {
		t.Fatalf("echoed %d bytes, %v; want %d", len(got), err, len(payload))
	}
}

func TestResetEndsBothSides(t *testing.T) {
	appDone := make(chan error, 1)
	c := through(t, app(t, func(c *net.TCPConn) {
		_, err := io.Copy(io.Discard, c)
		appDone <- err
	}))
	c.Write([]byte("x"))
	c.SetLinger(0)
	c.Close() // RST
	select {
	case <-appDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the app's connection outlived the client's reset")
	}
}

func TestDialRefused(t *testing.T) {
	p := pool.New(pool.Options{})
	defer p.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	appAddr := closed.Addr().String()
	closed.Close()
	_, err := Dial(context.Background(), p, peer(t, appAddr), http.Header{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadGateway {
		t.Fatalf("Dial to a peer whose app is down = %v, want StatusError 502", err)
	}
}
