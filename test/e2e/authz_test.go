//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// smiAccess grants the client service account GET on /allowed... of the
// server's HTTP ports, and the raw TCP port: SMI's TrafficTarget with an
// HTTPRouteGroup and a TCPRoute.
func smiAccess(tcpPort int) string {
	return fmt.Sprintf(`apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: reads, namespace: e2e}
spec:
  matches:
  - {name: allowed, methods: [GET], pathRegex: "/allowed.*"}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: {name: raw, namespace: e2e}
spec:
  matches: {ports: [%d]}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: client-to-server, namespace: e2e}
spec:
  destination: {kind: ServiceAccount, name: server, namespace: e2e}
  rules:
  - {kind: HTTPRouteGroup, name: reads, matches: [allowed]}
  - {kind: TCPRoute, name: raw}
  sources:
  - {kind: ServiceAccount, name: client, namespace: e2e}
`, tcpPort)
}

const denySecret = `apiVersion: weft.dev/v1alpha1
kind: AuthorizationPolicy
metadata: {name: no-secrets, namespace: e2e}
spec:
  targetRef: {kind: ServiceAccount, name: server}
  action: Deny
  rules:
  - paths: [{type: PathPrefix, value: /allowed/secret}]
`

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// TestAuthorization puts SMI and weft policies on the server and checks
// every protocol is allowed or refused the way its kind of client expects,
// that denials are counted with the caller's identity, that a bad policy
// leaves the good one in force, and that removing policies opens the
// server again.
func TestAuthorization(t *testing.T) {
	f := serverSide(t)
	m, c := f.m, f.c
	httpURL := func(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", c.http, path) }

	m.write("access.yaml", smiAccess(f.b.tcp))
	eventually(t, 15*time.Second, "the TrafficTarget in force", func() error {
		if code, body := fetch(t, httpURL("/other")); code != http.StatusForbidden {
			return fmt.Errorf("GET /other: %d %s", code, body)
		}
		return nil
	})
	if code, body := fetch(t, httpURL("/allowed/x")); code != http.StatusOK {
		t.Errorf("GET /allowed/x: %d %s, want 200", code, body)
	}
	if code, body := fetch(t, httpURL("/other")); !strings.Contains(body, "spiffe://weft.local/ns/e2e/sa/client") ||
		!strings.Contains(body, "TrafficTarget e2e/client-to-server") {
		t.Errorf("denial %d %q does not name the caller and the policy", code, body)
	}

	// gRPC gets PERMISSION_DENIED: its POSTs match no rule.
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", c.grpc), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := testgrpc.NewTestServiceClient(conn).EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.PermissionDenied {
		t.Errorf("gRPC call: %v, want PermissionDenied", err)
	}

	// The TCPRoute opens the raw port; the port the detect service reaches
	// is the same workload port, so it is open too.
	if greeting, err := tcpGreeting(c.tcp); err != nil || !strings.HasPrefix(greeting, "hello from server-0") {
		t.Errorf("allowed TCP: %q, %v", greeting, err)
	}

	// A deny policy wins over the allow.
	m.write("deny.yaml", denySecret)
	eventually(t, 15*time.Second, "the deny policy in force", func() error {
		code, body := fetch(t, httpURL("/allowed/secret"))
		if code != http.StatusForbidden || !strings.Contains(body, "AuthorizationPolicy e2e/no-secrets") {
			return fmt.Errorf("GET /allowed/secret: %d %s", code, body)
		}
		return nil
	})

	// A bad edit is reported and the last good version stays in force.
	m.write("access.yaml", strings.Replace(smiAccess(f.b.tcp), `"/allowed.*"`, `"/allowed(.*"`, 1))
	eventually(t, 15*time.Second, "the bad route group reported", func() error {
		out, _ := m.weft("get", "problems")
		if !strings.Contains(out, "pathRegex") {
			return fmt.Errorf("problems:\n%s", out)
		}
		return nil
	})
	if code, body := fetch(t, httpURL("/allowed/x")); code != http.StatusOK {
		t.Errorf("after a bad edit, GET /allowed/x: %d %s, want the last good policy", code, body)
	}

	// Denials are counted by policy and caller.
	metrics, err := httpBody(fmt.Sprintf("http://127.0.0.1:%d/metrics", f.serverAdmin))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`weft_inbound_authz_decisions_total{decision="deny",policy="TrafficTarget e2e/client-to-server",source_identity="spiffe://weft.local/ns/e2e/sa/client"}`,
		`weft_inbound_authz_decisions_total{decision="deny",policy="AuthorizationPolicy e2e/no-secrets",source_identity="spiffe://weft.local/ns/e2e/sa/client"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("server proxy metrics lack %s", want)
		}
	}

	// Policies removed: the mesh is open again.
	m.remove("access.yaml")
	m.remove("deny.yaml")
	eventually(t, 15*time.Second, "everything allowed again", func() error {
		if code, body := fetch(t, httpURL("/allowed/secret")); code != http.StatusOK {
			return fmt.Errorf("GET /allowed/secret: %d %s", code, body)
		}
		if code, body := fetch(t, httpURL("/other")); code != http.StatusOK {
			return fmt.Errorf("GET /other: %d %s", code, body)
		}
		return nil
	})
}

// tcpGreeting reads the backend's first line through an outbound port.
func tcpGreeting(port int) (string, error) {
	conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 128)
	n, err := conn.Read(buf)
	return string(buf[:n]), err
}

func httpBody(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// TestPermissiveMode runs the mesh permissive: a plaintext client from
// outside the mesh reaches the server's proxy beside mTLS peers, as an
// unauthenticated caller that policies naming sources keep out.
func TestPermissiveMode(t *testing.T) {
	f := serverSide(t, "--mtls-mode", "permissive")
	m, c := f.m, f.c
	outside := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", f.serverInbound, path), nil)
		// The server has several ports: a plaintext client names one.
		req.Header.Set("Weft-Target-Port", fmt.Sprint(f.b.http1))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(body))
	}
	eventually(t, 15*time.Second, "plaintext from outside the mesh served", func() error {
		if code, body := outside("/allowed/x"); code != http.StatusOK {
			return fmt.Errorf("plaintext GET: %d %s", code, body)
		}
		return nil
	})

	// A TrafficTarget names its sources: the unauthenticated caller is not
	// one of them, the client proxy still is.
	m.write("access.yaml", smiAccess(f.b.tcp))
	eventually(t, 15*time.Second, "plaintext denied by the TrafficTarget", func() error {
		if code, body := outside("/allowed/x"); code != http.StatusForbidden || !strings.Contains(body, "unauthenticated") {
			return fmt.Errorf("plaintext GET: %d %s", code, body)
		}
		return nil
	})
	if code, body := fetch(t, fmt.Sprintf("http://127.0.0.1:%d/allowed/x", c.http)); code != http.StatusOK {
		t.Errorf("through the mesh: %d %s", code, body)
	}
}
