package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/model"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		desc    string
		args    []string
		wantErr string // substring; "" means success
		check   func(t *testing.T, c *config)
	}{
		{
			desc: "managed workload",
			args: []string{"--control-plane", "127.0.0.1:15010", "--workload", "demo/web-0", "--admin", "127.0.0.1:15100", "--drain-timeout", "3s"},
			check: func(t *testing.T, c *config) {
				if c.workload != (model.Ref{Namespace: "demo", Name: "web-0"}) || c.registered != nil || c.drainTimeout != 3*time.Second {
					t.Fatalf("config %+v", c)
				}
			},
		},
		{
			desc: "registered workload",
			args: []string{"--control-plane", "127.0.0.1:15010", "--register", "--name", "web-1", "--namespace", "demo",
				"--labels", "app=web,version=v1", "--service-account", "web", "--address", "127.0.0.1",
				"--port", "http=8080/http", "--port", "9090", "--inbound-port", "14001",
				"--outbound", "catalog:80=16001,other/db:5432=16002", "--lease-ttl", "15s", "--admin", "127.0.0.1:15101"},
			check: func(t *testing.T, c *config) {
				w := c.registered
				want := &model.Workload{
					Ref:            model.Ref{Namespace: "demo", Name: "web-1"},
					Labels:         map[string]string{"app": "web", "version": "v1"},
					ServiceAccount: "web",
					Address:        "127.0.0.1",
					Ports:          []model.WorkloadPort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP1}, {Port: 9090}},
					InboundPort:    14001,
					Outbound: []model.Outbound{
						{Service: model.Ref{Namespace: "demo", Name: "catalog"}, Port: 80, LocalPort: 16001},
						{Service: model.Ref{Namespace: "other", Name: "db"}, Port: 5432, LocalPort: 16002},
					},
					AdminPort: 15101,
				}
				if w == nil || !w.Equal(want) || c.workload != want.Ref || c.leaseTTL != 15*time.Second {
					t.Fatalf("workload\n got %+v\nwant %+v", w, want)
				}
			},
		},
		{desc: "no control plane", args: []string{"--workload", "demo/web-0"}, wantErr: "--control-plane is required"},
		{desc: "no workload", args: []string{"--control-plane", "x:1"}, wantErr: "--workload"},
		{desc: "bad trust domain", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--trust-domain", "Not A Domain"}, wantErr: "--trust-domain"},
		{desc: "bad log format", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--log-format", "xml"}, wantErr: "--log-format"},
		{desc: "unknown balancer", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--balancer", "random"}, wantErr: `--balancer "random": want one of p2c, round-robin`},
		{desc: "bad trace protocol", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--trace-protocol", "zipkin"}, wantErr: `--trace-protocol "zipkin": want grpc or http`},
		{desc: "bad app probe", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--app-probes", `{"app/readiness":{"port":0}}`}, wantErr: `app probe "app/readiness": port: 0`},
		{desc: "bad app probe address", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--app-probe-address", "$(POD_IP)"}, wantErr: `--app-probe-address "$(POD_IP)": want an IP address`},
		{desc: "app probes not JSON", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--app-probes", `app=8080`}, wantErr: `invalid value "app=8080" for flag -app-probes`},
		{desc: "trace ratio out of range", args: []string{"--control-plane", "x:1", "--workload", "a/b", "--trace-sample-ratio", "2"}, wantErr: "--trace-sample-ratio 2: want 0 to 1"},
		{desc: "bad port", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "1", "--port", "http=80/quic"}, wantErr: `--port "http=80/quic"`},
		{desc: "bad outbound", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "1", "--outbound", "catalog=1"}, wantErr: "--outbound"},
		{desc: "missing inbound port", args: []string{"--control-plane", "x:1", "--register", "--name", "w"}, wantErr: "--inbound-port"},
		{desc: "bad address", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "1", "--address", "localhost"}, wantErr: "--address"},
		{desc: "bad name", args: []string{"--control-plane", "x:1", "--register", "--name", "Web_1", "--inbound-port", "1"}, wantErr: "--namespace/--name"},
		{desc: "bad labels", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "1", "--labels", "app"}, wantErr: "--labels"},
		{desc: "outbound on inbound port", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "16001", "--outbound", "c:80=16001"}, wantErr: "--outbound"},
		{desc: "workload disagrees", args: []string{"--control-plane", "x:1", "--register", "--name", "w", "--inbound-port", "1", "--workload", "demo/x"}, wantErr: "disagrees"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseFlags error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestJoinToken(t *testing.T) {
	dir := t.TempDir()
	good, empty := filepath.Join(dir, "good"), filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("weft1.abc.def\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc, file, env, want, wantErr string
	}{
		{desc: "file", file: good, want: "weft1.abc.def"},
		{desc: "file wins over env", file: good, env: "other", want: "weft1.abc.def"},
		{desc: "env", env: " weft1.x.y ", want: "weft1.x.y"},
		{desc: "none", wantErr: "no join token"},
		{desc: "missing file", file: filepath.Join(dir, "nope"), wantErr: "--token-file"},
		{desc: "empty file", file: empty, wantErr: "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Setenv("WEFT_JOIN_TOKEN", tc.env)
			got, err := joinToken(tc.file)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("joinToken = %q, %v; want error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("joinToken = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

// TestImports guards the proxy's footprint: no Kubernetes, no control-plane
// halves, nothing of the CLI.
func TestImports(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	out, err := exec.Command(goBin, "list", "-deps", ".", "../../internal/proxy/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/weftmesh/weft/internal/discovery",
		"github.com/weftmesh/weft/internal/registry",
		"github.com/weftmesh/weft/internal/source",
		"github.com/weftmesh/weft/internal/manifest",
		"github.com/weftmesh/weft/internal/controlplane",
		"github.com/weftmesh/weft/internal/identity/ca",
		"github.com/weftmesh/weft/internal/identity/issuer",
		"github.com/weftmesh/weft/internal/demo",
		"github.com/spf13/cobra",
		"k8s.io/",
		"sigs.k8s.io/",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(dep, f) {
				t.Errorf("weft-proxy depends on %s", dep)
			}
		}
	}
}

// saToken is a JWT with the given subject; its signature is nobody's,
// which the proxy never checks (the control plane asks the API server).
func saToken(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc([]byte(`{"sub":"`+sub+`","aud":["weft"]}`)) + "." + enc([]byte("sig"))
}

func TestNewTrustFromServiceAccountToken(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("weft.local")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		desc, token, caFile, wantID, wantErr string
	}{
		{"a service account token", saToken("system:serviceaccount:shop:catalog"), caFile, "spiffe://weft.local/ns/shop/sa/catalog", ""},
		{"no CA", saToken("system:serviceaccount:shop:catalog"), "", "", "--ca-file"},
		{"a user's token", saToken("alice"), caFile, "", `subject "alice" is not a service account`},
		{"not a JWT", "opaque", caFile, "", "not a JWT"},
		{"a CA file that is none", saToken("system:serviceaccount:shop:catalog"), filepath.Join(dir, "nope"), "", "--ca-file"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			_, id, err := newTrust(td, tc.token, tc.caFile)
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case id.String() != tc.wantID:
				t.Errorf("identity %s, want %s", id, tc.wantID)
			}
		})
	}
}
