package controlplane

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/proxy/control"
)

const meshYAML = `apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: catalog}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: weft.dev/v1alpha1
kind: Workload
metadata: {name: catalog-0, namespace: shop, labels: {app: catalog}}
spec:
  serviceAccount: catalog
  address: 127.0.0.1
  ports: [{name: http, port: 8080}]
  proxy: {inboundPort: 4143}
`

func startControlPlane(t *testing.T) *ControlPlane {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(meshYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return runControlPlane(t, Options{ManifestDir: dir, StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
}

// runControlPlane starts a control plane with opts, stopped when the test
// ends, and waits until it has read its sources.
func runControlPlane(t *testing.T, opts Options) *ControlPlane {
	t.Helper()
	cp, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("control plane: %v", err)
		}
	})
	select {
	case <-cp.Loaded():
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("control plane ended before it loaded: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the control plane did not load its sources within 30s")
	}
	return cp
}

// joinAs gets an SVID for namespace/sa the way a proxy does, and returns a
// connection for discovery and registration that carries it.
func joinAs(t *testing.T, cp *ControlPlane, token string) (*identity.Source, *grpc.ClientConn) {
	t.Helper()
	td := spiffeid.RequireTrustDomainFromString(cp.TrustDomain())
	trust, claims, err := control.NewTrust(td, token)
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.WorkloadID(td, claims.Namespace, claims.ServiceAccount)
	if err != nil {
		t.Fatal(err)
	}
	src := identity.NewSource(id, control.NewCertifier(cp.GRPCAddr(), trust), nil)
	trust.Bind(src)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go src.Run(ctx)
	select {
	case <-src.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("no SVID within 20s")
	}
	conn, err := control.Dial(cp.GRPCAddr(), trust.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return src, conn
}

func token(t *testing.T, cp *ControlPlane, ns, sa string) string {
	t.Helper()
	tok, err := cp.JoinToken(ns, sa, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Token
}

func firstResponse(t *testing.T, conn *grpc.ClientConn, workload string) (*meshv1.StreamResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ns, name, _ := strings.Cut(workload, "/")
	stream, err := meshv1.NewDiscoveryClient(conn).Stream(ctx)
	if err != nil {
		return nil, err
	}
	// A refused stream may end before the request is sent; Send then says
	// io.EOF and the status comes with Recv.
	if err := stream.Send(&meshv1.StreamRequest{Workload: &meshv1.Ref{Namespace: ns, Name: name}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return stream.Recv()
}

func TestProxyJoinsWithTokenThenUsesItsSVID(t *testing.T) {
	cp := startControlPlane(t)
	src, conn := joinAs(t, cp, token(t, cp, "shop", "catalog"))
	if got := src.Leaf().URIs[0].String(); got != "spiffe://weft.local/ns/shop/sa/catalog" {
		t.Errorf("SVID for %s", got)
	}
	resp, err := firstResponse(t, conn, "shop/catalog-0")
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetWorkload().GetRef().GetName() != "catalog-0" || len(resp.GetTrustBundle()) != 1 || resp.GetBundleVersion() == 0 {
		t.Errorf("first response: workload %v, %d roots, bundle version %d", resp.GetWorkload().GetRef(), len(resp.GetTrustBundle()), resp.GetBundleVersion())
	}
	// Renewal goes over the SVID, with no token.
	src.RenewNow()
	deadline := time.Now().Add(10 * time.Second)
	for src.Renewals() < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if src.Renewals() < 2 {
		t.Error("the SVID was not renewed")
	}
	if n := cp.Identity().Anchors[0].LiveLeaves; n < 3 { // the control plane's own, and two of this proxy's
		t.Errorf("live leaves = %d", n)
	}
}

func TestIdentityListsLeavesInUse(t *testing.T) {
	cp := startControlPlane(t)
	_, conn := joinAs(t, cp, token(t, cp, "shop", "catalog"))
	if _, err := firstResponse(t, conn, "shop/catalog-0"); err != nil {
		t.Fatal(err)
	}
	var got []Leaf
	for _, l := range cp.Identity().Leaves {
		if l.SPIFFEID == "spiffe://weft.local/ns/shop/sa/catalog" {
			got = append(got, l)
		}
	}
	if len(got) != 1 || got[0].Proxies != 1 || got[0].NotAfter.Sub(got[0].Issued) < time.Hour {
		t.Fatalf("leaves of shop/catalog: %+v, want one in use by one proxy", got)
	}
}

func TestControlPlaneRefuses(t *testing.T) {
	cp := startControlPlane(t)

	// A proxy of another identity may not be catalog-0's proxy.
	_, other := joinAs(t, cp, token(t, cp, "shop", "billing"))
	if _, err := firstResponse(t, other, "shop/catalog-0"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("stream for another identity's workload: %v, want PermissionDenied", err)
	}
	if _, err := firstResponse(t, other, "bank/vault-0"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("stream for another namespace: %v, want PermissionDenied", err)
	}

	// No certificate, no discovery.
	td := spiffeid.RequireTrustDomainFromString(cp.TrustDomain())
	trust, _, err := control.NewTrust(td, token(t, cp, "shop", "catalog"))
	if err != nil {
		t.Fatal(err)
	}
	bare, err := control.Dial(cp.GRPCAddr(), trust.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	if _, err := firstResponse(t, bare, "shop/catalog-0"); status.Code(err) != codes.Unauthenticated {
		t.Errorf("stream without an SVID: %v, want Unauthenticated", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = meshv1.NewRegistrationClient(bare).Register(ctx, &meshv1.RegisterRequest{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("register without an SVID: %v, want Unauthenticated", err)
	}

	// A forged token gets no certificate.
	good := token(t, cp, "shop", "catalog")
	forged := good[:len(good)-4] + "AAAA"
	_, err = meshv1.NewIdentityClient(bare).Certify(ctx, &meshv1.CertifyRequest{Csr: []byte("x"), Token: forged})
	if status.Code(err) != codes.Unauthenticated || strings.Contains(err.Error(), forged) {
		t.Errorf("certify with a forged token: %v, want Unauthenticated not echoing the token", err)
	}

	// A token pinning another root does not trust this control plane.
	claims, _ := identity.ParseTokenUnverified(good)
	claims.Root = "sha256:" + strings.Repeat("0", 64)
	input, _ := identity.TokenSigningInput(claims)
	wrongPin, _, err := control.NewTrust(td, input+"."+strings.Repeat("A", 43))
	if err != nil {
		t.Fatal(err)
	}
	pinned, err := control.Dial(cp.GRPCAddr(), wrongPin.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer pinned.Close()
	_, err = meshv1.NewIdentityClient(pinned).Certify(ctx, &meshv1.CertifyRequest{Csr: []byte("x"), Token: good})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "pin") {
		t.Errorf("certify through a wrong pin: %v, want the handshake refused over the pin", err)
	}
}

func TestRevokedJoinTokenGetsNoCertificate(t *testing.T) {
	cp := startControlPlane(t)
	tok, err := cp.JoinToken("shop", "catalog", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	post := func(bearer, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+cp.AdminAddr()+"/api/v1/identity/tokens/revoke", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+bearer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := post("wrong", `{"id":"`+tok.ID+`"}`); code != http.StatusUnauthorized {
		t.Fatalf("revoke without the admin token: %d, want 401", code)
	}
	if code, body := post(cp.adminToken, `{"id":"no such/id"}`); code != http.StatusBadRequest || !strings.Contains(body, "id:") {
		t.Fatalf("revoke a malformed ID: %d %s, want 400 naming the id", code, body)
	}
	if code, body := post(cp.adminToken, `{"id":"`+tok.ID+`"}`); code != http.StatusOK {
		t.Fatalf("revoke: %d %s", code, body)
	}

	td := spiffeid.RequireTrustDomainFromString(cp.TrustDomain())
	trust, _, err := control.NewTrust(td, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	err = certify(t, cp, trust, []byte("x"), tok.Token)
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "revoked") {
		t.Fatalf("certify with a revoked token: %v, want Unauthenticated saying it is revoked", err)
	}
}

// TestControlPlaneIdentityIsNotIssued: the control plane's identity may
// tap every proxy, so the admin API mints no token for it, and a token
// for it (minted directly) gets no certificate.
func TestControlPlaneIdentityIsNotIssued(t *testing.T) {
	cp := startControlPlane(t)
	req, _ := http.NewRequest("POST", "http://"+cp.AdminAddr()+"/api/v1/identity/tokens",
		strings.NewReader(`{"namespace":"weft-system","serviceAccount":"weft-control-plane"}`))
	req.Header.Set("Authorization", "Bearer "+cp.adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "serviceAccount: weft-system/weft-control-plane is the control plane's own identity") {
		t.Fatalf("mint a token for the control plane: %d %s, want 400 naming serviceAccount", resp.StatusCode, body)
	}
	tok, err := cp.JoinToken("weft-system", "weft-control-plane", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	td := spiffeid.RequireTrustDomainFromString(cp.TrustDomain())
	trust, _, err := control.NewTrust(td, tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	err = certify(t, cp, trust, newCSR(t), tok.Token)
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "control plane's identity") {
		t.Fatalf("certify as the control plane: %v, want PermissionDenied", err)
	}
}

// newCSR is a certificate request with a fresh key, for the calls that
// are refused before its contents matter.
func newCSR(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return csr
}

// certify asks cp's Identity service for a certificate for csr with
// token, over a connection trust verifies.
func certify(t *testing.T, cp *ControlPlane, trust *control.Trust, csr []byte, token string) error {
	t.Helper()
	conn, err := control.Dial(cp.GRPCAddr(), trust.Credentials())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = meshv1.NewIdentityClient(conn).Certify(ctx, &meshv1.CertifyRequest{Csr: csr, Token: token})
	return err
}
