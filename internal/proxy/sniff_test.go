package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"math/big"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS13}
}

func TestMixedListener(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var permissive atomic.Bool
	l := newMixedListener(inner, selfSigned(t), permissive.Load, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { l.Close() })
	addr := l.Addr().String()

	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			if tc, ok := c.(*tls.Conn); ok {
				go tc.Handshake() // as the HTTP server does, on the connection's goroutine
			}
			accepted <- c
		}
	}()
	next := func(desc string) net.Conn {
		t.Helper()
		select {
		case c := <-accepted:
			return c
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing accepted", desc)
			return nil
		}
	}

	// A silent client holds up no one.
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	// TLS clients get a TLS server connection.
	tc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS client: %v", err)
	}
	defer tc.Close()
	if _, ok := next("TLS client").(*tls.Conn); !ok {
		t.Fatal("a TLS client's connection is not TLS on the server side")
	}

	// Strict: plaintext is closed, never accepted.
	plain, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	plain.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := plain.Read(make([]byte, 1)); err == nil {
		t.Fatalf("strict mode: plaintext client read %d bytes, want the connection closed", n)
	}
	plain.Close()

	// Permissive: plaintext is accepted with its first bytes intact.
	permissive.Store(true)
	plain, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.Write([]byte("GET /"))
	c := next("plaintext client in permissive mode")
	if _, ok := c.(*tls.Conn); ok {
		t.Fatal("a plaintext client got a TLS connection")
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "GET /" {
		t.Fatalf("plaintext bytes %q, %v", got, err)
	}

	// Close ends Accept.
	l.Close()
	for range accepted {
	}
}
