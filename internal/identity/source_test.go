package identity_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

// startSource runs a Source certified in process by c and waits for its
// first SVID.
func startSource(t *testing.T, c *ca.CA, ns, sa string, ttl time.Duration, log *slog.Logger) *identity.Source {
	t.Helper()
	id, err := identity.WorkloadID(td, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	s := identity.NewSource(id, c.Certifier(id, ttl), log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("no SVID")
	}
	return s
}

// serve runs an mTLS echo server: each connection first gets a line naming
// the client's verified ID and the serial of the server's certificate.
func serve(t *testing.T, s *identity.Source, authorize func(spiffeid.ID) error) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tln := tls.NewListener(ln, s.ServerTLSConfig(authorize))
	var wg sync.WaitGroup
	t.Cleanup(func() { tln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := tln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				tc := conn.(*tls.Conn)
				if err := tc.Handshake(); err != nil {
					return
				}
				peer, err := identity.PeerID(tc.ConnectionState())
				if err != nil {
					return
				}
				fmt.Fprintf(conn, "%s %s\n", peer, s.Leaf().SerialNumber)
				_, _ = io.Copy(conn, conn)
			}()
		}
	}()
	return ln.Addr().String()
}

// hello dials addr as client, expecting want, and returns the greeting.
func hello(t *testing.T, client *identity.Source, addr string, want spiffeid.ID) (net.Conn, *bufio.Reader, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := client.DialTLS(ctx, "tcp", addr, want)
	if err != nil {
		return nil, nil, "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, nil, "", err
	}
	return conn, r, strings.TrimSpace(line), nil
}

func echo(t *testing.T, conn net.Conn, r *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatalf("connection dropped: %v", err)
	}
	if l, err := r.ReadString('\n'); err != nil || l != "ping\n" {
		t.Fatalf("echo = %q, %v", l, err)
	}
}

func TestHandshake(t *testing.T) {
	c, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	server := startSource(t, c, "shop", "catalog", time.Hour, nil)
	client := startSource(t, c, "shop", "web", time.Hour, nil)
	admin, _ := identity.WorkloadID(td, "shop", "admin")
	addr := serve(t, server, func(peer spiffeid.ID) error {
		if peer == admin {
			return errors.New("admin may not call catalog")
		}
		return nil
	})

	conn, r, line, err := hello(t, client, addr, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if !strings.HasPrefix(line, client.ID().String()+" ") {
		t.Errorf("server saw %q, want %s", line, client.ID())
	}
	cs := conn.(*tls.Conn).ConnectionState()
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "h2" {
		t.Errorf("version %x, ALPN %q", cs.Version, cs.NegotiatedProtocol)
	}
	echo(t, conn, r)

	// A tunnel's connection offers http/1.1, verified the same way.
	tunnels := client.Dialer(func(string) (spiffeid.ID, bool) { return server.ID(), true })
	tconn, err := tunnels.DialTunnel(context.Background(), addr)
	if err != nil {
		t.Fatalf("DialTunnel: %v", err)
	}
	defer tconn.Close()
	if cs := tconn.(*tls.Conn).ConnectionState(); cs.NegotiatedProtocol != identity.ALPNTunnel {
		t.Errorf("tunnel connection ALPN %q, want %q", cs.NegotiatedProtocol, identity.ALPNTunnel)
	}
	wrong := client.Dialer(func(string) (spiffeid.ID, bool) { return admin, true })
	if _, err := wrong.DialTunnel(context.Background(), addr); !errors.Is(err, identity.ErrWrongID) {
		t.Errorf("DialTunnel to a peer that is not the one expected = %v, want ErrWrongID", err)
	}

	// The client expects someone else.
	_, _, _, err = hello(t, client, addr, admin)
	if !errors.Is(err, identity.ErrWrongID) || !strings.Contains(err.Error(), "peer is "+server.ID().String()) {
		t.Errorf("wrong expected ID: %v", err)
	}
	// The server's authorizer refuses the caller.
	adminSrc := startSource(t, c, "shop", "admin", time.Hour, nil)
	if _, _, _, err := hello(t, adminSrc, addr, server.ID()); err == nil {
		t.Error("unauthorized client got through")
	}
	// A workload of another CA (same trust domain) is refused both ways.
	c2, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger := startSource(t, c2, "shop", "web", time.Hour, nil)
	if _, _, _, err := hello(t, stranger, addr, server.ID()); !errors.Is(err, identity.ErrUnknownCA) {
		t.Errorf("stranger dialing: %v", err)
	}
	// Plain TLS without a client certificate is refused.
	raw, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}})
	if err == nil {
		_, err = raw.Read(make([]byte, 1))
		raw.Close()
	}
	if err == nil {
		t.Error("a client without a certificate got through")
	}
	// The pool-style Dialer.
	d := client.Dialer(func(a string) (spiffeid.ID, bool) { return server.ID(), a == addr })
	dc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	dc.Close()
	if _, err := d.DialContext(context.Background(), "tcp", "127.0.0.1:1"); err == nil {
		t.Error("Dialer dialed an address with no known identity")
	}
}

func TestRenewalKeepsConnections(t *testing.T) {
	c, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	server := startSource(t, c, "shop", "catalog", time.Hour, nil)
	client := startSource(t, c, "shop", "web", time.Hour, nil)
	addr := serve(t, server, nil)
	conn, r, line, err := hello(t, client, addr, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	oldSerial := server.Leaf().SerialNumber
	if !strings.HasSuffix(line, " "+oldSerial.String()) {
		t.Fatalf("greeting %q", line)
	}
	n := server.Renewals()
	server.RenewNow()
	waitFor(t, func() bool { return server.Renewals() > n })
	if server.Leaf().SerialNumber.Cmp(oldSerial) == 0 {
		t.Fatal("renewal kept the same certificate")
	}
	echo(t, conn, r) // the open connection is still up
	conn2, _, line2, err := hello(t, client, addr, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	newSerial := conn2.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber
	if newSerial.Cmp(oldSerial) == 0 || !strings.HasSuffix(line2, " "+newSerial.String()) {
		t.Errorf("new handshake used serial %v (old %v)", newSerial, oldSerial)
	}
}

func TestAutomaticRenewalAndRetry(t *testing.T) {
	c, err := ca.LoadOrCreate(t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := identity.WorkloadID(td, "shop", "web")
	f := &flaky{inner: c.Certifier(id, 2*time.Second), fail: map[int]bool{2: true, 3: true}}
	var logs bytes.Buffer
	var mu sync.Mutex
	s := identity.NewSource(id, f, slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil)))
	identity.SetBackoff(s, 10*time.Millisecond, 50*time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	<-s.Ready()
	first := s.Leaf()
	// The leaf lives 2 s: renewal at ~1 s, two failures retried, then a new one.
	waitFor(t, func() bool { return s.Renewals() >= 2 })
	if s.Leaf().SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("not renewed")
	}
	if got := f.calls(); got < 4 {
		t.Errorf("%d Certify calls, want >= 4 (two failures retried)", got)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "SVID renewal failed") || !strings.Contains(out, "REDACTED") || strings.Contains(out, "PRIVATE") {
		t.Errorf("logs:\n%s", out)
	}
	if str := fmt.Sprint(s); !strings.Contains(str, "REDACTED") {
		t.Errorf("String() = %q", str)
	}
}

func TestRootRotation(t *testing.T) {
	dir := t.TempDir()
	c, err := ca.LoadOrCreate(dir, td, nil)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 3 * time.Second
	srcs := []*identity.Source{
		startSource(t, c, "shop", "catalog", ttl, nil),
		startSource(t, c, "shop", "web", ttl, nil),
	}
	server, client := srcs[0], srcs[1]
	addr := serve(t, server, nil)
	conn, r, _, err := hello(t, client, addr, server.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	check := func(step string) {
		t.Helper()
		echo(t, conn, r)
		c2, _, _, err := hello(t, client, addr, server.ID())
		if err != nil {
			t.Fatalf("%s: new handshake: %v", step, err)
		}
		c2.Close()
	}
	renewAll := func() {
		t.Helper()
		for _, s := range srcs {
			n := s.Renewals()
			s.SetBundle(c.Bundle())
			s.RenewNow()
			waitFor(t, func() bool { return s.Renewals() > n })
		}
	}
	chainsTo := func(s *identity.Source, root *x509.Certificate) bool {
		_, err := identity.Verify([]*x509.Certificate{s.Leaf(), c.Intermediate()}, []*x509.Certificate{root}, td, time.Now())
		return err == nil
	}
	oldRoot := c.ActiveRoot()
	check("before")

	if err := c.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	check("prepared, old bundle")
	renewAll()
	for _, s := range srcs {
		if len(s.Bundle()) != 2 {
			t.Fatalf("%s holds %d roots after prepare", s.ID(), len(s.Bundle()))
		}
	}
	check("prepared, renewed")

	if err := c.ActivateNewRoot(); err != nil {
		t.Fatal(err)
	}
	newRoot := c.ActiveRoot()
	// Only the server renews first: a new-root server, an old-root client.
	n := server.Renewals()
	server.RenewNow()
	waitFor(t, func() bool { return server.Renewals() > n })
	if !chainsTo(server, newRoot) {
		t.Fatal("server's leaf does not chain to the new root")
	}
	check("activated, mixed")
	renewAll()
	check("activated, renewed")

	// Leaves of the old root expire within one TTL; until then Finish refuses.
	if a := c.Anchors(); a[0].LiveLeaves == 0 {
		t.Logf("old-root leaves already expired")
	} else if err := c.FinishRotation(false); !errors.Is(err, ca.ErrRotation) {
		t.Fatalf("finish with live old leaves: %v", err)
	}
	waitFor(t, func() bool { return c.Anchors()[0].LiveLeaves == 0 })
	if err := c.FinishRotation(false); err != nil {
		t.Fatal(err)
	}
	check("finished, old bundle")
	renewAll()
	for _, s := range srcs {
		b := s.Bundle()
		if len(b) != 1 || !b[0].Equal(newRoot) || b[0].Equal(oldRoot) {
			t.Fatalf("%s bundle after finish: %d roots", s.ID(), len(b))
		}
	}
	check("finished, renewed")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type flaky struct {
	inner identity.Certifier
	mu    sync.Mutex
	n     int
	fail  map[int]bool
}

func (f *flaky) Certify(ctx context.Context, csr []byte) ([][]byte, []*x509.Certificate, error) {
	f.mu.Lock()
	f.n++
	n := f.n
	f.mu.Unlock()
	if f.fail[n] {
		return nil, nil, errors.New("control plane unavailable")
	}
	return f.inner.Certify(ctx, csr)
}

func (f *flaky) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
