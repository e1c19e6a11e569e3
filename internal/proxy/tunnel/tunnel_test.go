package tunnel

import (
	"bufio"
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
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
)

// peer serves CONNECT like an inbound proxy: each tunnel is piped to a
// fresh connection to app.
func peer(t *testing.T, app string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodConnect {
			http.Error(w, "want CONNECT", http.StatusMethodNotAllowed)
			return
		}
		c, err := net.Dial("tcp", app)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		down, err := Take(w)
		if err != nil {
			c.Close()
			return
		}
		if err := down.Confirm(); err != nil {
			down.Close()
			c.Close()
			return
		}
		Pipe(down, c.(*net.TCPConn), 0)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

func app(t *testing.T, handle func(*net.TCPConn)) string {
	t.Helper()
	return tcpserver.Serve(t, handle).String()
}

// through returns a client connection whose bytes travel
// client -> Pipe -> tunnel -> peer -> app.
func through(t *testing.T, appAddr string) *net.TCPConn {
	t.Helper()
	p := pool.New(pool.Options{})
	t.Cleanup(func() { p.Close() })
	s, err := Dial(context.Background(), p.DialTunnel, peer(t, appAddr), http.Header{})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	a, b := tcpPair(t)
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

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	return ln.Addr().String()
}

func TestDialRefused(t *testing.T) {
	p := pool.New(pool.Options{})
	defer p.Close()
	_, err := Dial(context.Background(), p.DialTunnel, peer(t, closedAddr(t)), http.Header{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadGateway {
		t.Fatalf("Dial to a peer whose app is down = %v, want StatusError 502", err)
	}
}

func TestBytesSentWithTheConnect(t *testing.T) {
	// A client may send its first bytes with the request head, before the
	// peer's 200: the peer has read them already and must not lose them.
	got := make(chan string, 1)
	peerAddr := peer(t, app(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		got <- string(b)
	}))
	c, err := net.Dial("tcp", peerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT app HTTP/1.1\r\nHost: app\r\n\r\nearly bytes"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("answer to CONNECT: %v, %v", resp, err)
	}
	c.(*net.TCPConn).CloseWrite()
	select {
	case b := <-got:
		if b != "early bytes" {
			t.Fatalf("app got %q, want the bytes sent with the CONNECT", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the app never got EOF")
	}
}

func TestDialUnreachablePeer(t *testing.T) {
	p := pool.New(pool.Options{})
	defer p.Close()
	_, err := Dial(context.Background(), p.DialTunnel, closedAddr(t), http.Header{})
	var de *pool.DialError
	if !errors.As(err, &de) {
		t.Fatalf("Dial to a peer that is not there = %v, want a pool.DialError (callers try another endpoint)", err)
	}
}

func TestDialSilentPeerEndsWithContext(t *testing.T) {
	// A peer that accepts and never answers holds the dial only as long
	// as its context.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	p := pool.New(pool.Options{})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, p.DialTunnel, ln.Addr().String(), http.Header{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a silent peer = %v, want DeadlineExceeded", err)
	}
}
