package proxy_test

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/proxy"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
)

// TestClientCertHeader: the app learns its caller's verified identity from
// X-Forwarded-Client-Cert, and never from what a client wrote there.
func TestClientCertHeader(t *testing.T) {
	m := newTapMesh(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	forged := "By=spiffe://weft.test/ns/demo/sa/api;URI=spiffe://weft.test/ns/demo/sa/admin"
	h := http.Header{
		meshheader.TargetPort:  {strconv.Itoa(int(m.wl.Ports[0].Port))},
		proxy.ClientCertHeader: {forged},
	}
	cases := []struct {
		name   string
		client *http.Client
		url    string
		want   string
	}{
		{"web over mTLS", m.client(m.web), "https://" + m.inbound + "/", "By=" + m.apiID.String() + ";URI=" + m.webID.String()},
		{"a plaintext client (permissive)", &http.Client{}, "http://" + m.inbound + "/", ""},
	}
	for _, tc := range cases {
		if code, body := tapBody(t, tapSend(t, ctx, tc.client, http.MethodGet, tc.url, h)); code != http.StatusOK {
			t.Fatalf("%s: %d %q", tc.name, code, body)
		}
		if got, _ := m.appClientCert.Load().(string); got != tc.want {
			t.Errorf("%s: the app saw %s %q, want %q", tc.name, proxy.ClientCertHeader, got, tc.want)
		}
	}
}
