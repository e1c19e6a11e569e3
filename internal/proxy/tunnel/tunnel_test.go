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
)

// peer serves CONNECT like an inbound proxy: each tunnel, over HTTP/1.1
// or HTTP/2, is piped to a fresh connection to app.
func peer(t *testing.T, app string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protos http.Protocols
	protos.SetHTTP1(true)
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
		if r.ProtoMajor == 2 {
			Serve(w, r, c.(*net.TCPConn))
			return
		}
		down, err := Accept(w)
		if err != nil {
			c.Close()
			return
		}
		Pipe(down, c.(*net.TCPConn), 0)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// h2Stream opens a tunnel the way proxies did before tunnels had
// connections of their own: a CONNECT stream on an HTTP/2 connection,
// its request body one way and its answer's body the other.
func h2Stream(t *testing.T, peerAddr string) HalfCloser {
	t.Helper()
	p := pool.New(pool.Options{})
	t.Cleanup(func() { p.Close() })
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodConnect, "http://"+peerAddr, pr)
	req.ContentLength = -1
	resp, err := p.RoundTrip(req)
	if err != nil {
		t.Fatalf("HTTP/2 CONNECT: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP/2 CONNECT: %s", resp.Status)
	}
	return &h2End{pw: pw, body: resp.Body}
}

type h2End struct {
	pw   *io.PipeWriter
	body io.ReadCloser
}

func (s *h2End) Read(p []byte) (int, error)  { return s.body.Read(p) }
func (s *h2End) Write(p []byte) (int, error) { return s.pw.Write(p) }
func (s *h2End) CloseWrite() error           { return s.pw.Close() }
func (s *h2End) Close() error {
	s.pw.CloseWithError(errors.New("tunnel closed"))
	return s.body.Close()
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
// client -> Pipe -> tunnel -> peer -> app, the tunnel being of kind "h1"
// (Dial, on a connection of its own) or "h2" (an HTTP/2 CONNECT stream).
func through(t *testing.T, kind, appAddr string) *net.TCPConn {
	t.Helper()
	peerAddr := peer(t, appAddr)
	var s HalfCloser
	if kind == "h2" {
		s = h2Stream(t, peerAddr)
	} else {
		p := pool.New(pool.Options{})
		t.Cleanup(func() { p.Close() })
		st, err := Dial(context.Background(), p.DialTunnel, peerAddr, http.Header{})
		if err != nil {
			t.Fatalf("Dial: %v", err)
		}
		s = st
	}
	a, b := tcpPair(t)
	go Pipe(b, s, time.Second)
	a.SetDeadline(time.Now().Add(10 * time.Second))
	return a
}

// bothKinds runs test over each kind of tunnel.
func bothKinds(t *testing.T, test func(t *testing.T, kind string)) {
	for _, kind := range []string{"h1", "h2"} {
		t.Run(kind, func(t *testing.T) { test(t, kind) })
	}
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
	bothKinds(t, func(t *testing.T, kind string) {
		// The app answers only after EOF: the client's half-close must cross.
		c := through(t, kind, app(t, func(c *net.TCPConn) {
			b, _ := io.ReadAll(c)
			c.Write(bytes.ToUpper(b))
		}))
		c.Write([]byte("hello"))
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "HELLO" {
			t.Fatalf("got %q, %v; want HELLO", got, err)
		}
	})
}

func TestServerFinishesFirst(t *testing.T) {
	bothKinds(t, func(t *testing.T, kind string) {
		c := through(t, kind, app(t, func(c *net.TCPConn) {
			c.Write([]byte("bye"))
		}))
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "bye" {
			t.Fatalf("got %q, %v; want bye then EOF", got, err)
		}
	})
}

func TestBulkBothWays(t *testing.T) {
	bothKinds(t, func(t *testing.T, kind string) {
		c := through(t, kind, app(t, func(c *net.TCPConn) { io.Copy(c, c) }))
		payload := strings.Repeat("0123456789", 300_000)
		go func() {
			c.Write([]byte(payload))
			c.CloseWrite()
		}()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != payload {
			t.Fatalf("echoed %d bytes, %v; want %d", len(got), err, len(payload))
		}
	})
}

func TestResetEndsBothSides(t *testing.T) {
	bothKinds(t, func(t *testing.T, kind string) {
		appDone := make(chan error, 1)
		c := through(t, kind, app(t, func(c *net.TCPConn) {
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
	})
}

func TestDialRefused(t *testing.T) {
	p := pool.New(pool.Options{})
	defer p.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	appAddr := closed.Addr().String()
	closed.Close()
	_, err := Dial(context.Background(), p.DialTunnel, peer(t, appAddr), http.Header{})
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
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := closed.Addr().String()
	closed.Close()
	_, err := Dial(context.Background(), p.DialTunnel, addr, http.Header{})
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
