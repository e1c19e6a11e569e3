package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"maps"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/meshheader"
)

// benchProxy is a proxy with a trust domain (so metrics carry SPIFFE
// IDs) and a config naming its own workload, as one in a mesh has.
func benchProxy(b *testing.B) (*Proxy, *model.Endpoint) {
	b.Helper()
	p := New(Options{Logger: slog.New(slog.DiscardHandler), TrustDomain: "weft.local"})
	self := &model.Workload{Ref: model.Ref{Namespace: "demo", Name: "web-0"}, ServiceAccount: "web"}
	p.cur.Store(&state{cfg: &model.ProxyConfig{Workload: self}})
	ep := &model.Endpoint{ID: "demo/api-0", Workload: model.Ref{Namespace: "demo", Name: "api-0"}, Address: "198.18.0.1", ProxyPort: 15006,
		ServiceAccount: model.Ref{Namespace: "demo", Name: "api"}, TargetPorts: map[uint32]uint32{80: 8080}}
	return p, ep
}

// BenchmarkObservedRequest is what telemetry costs each request: the
// wrapper every listener's handler runs in (exchange, in-flight gauge,
// the requests, responses and latency series with their peer labels,
// tap's check), around a handler that only answers 200. Tracing is off
// here; internal/proxy/trace's benchmarks measure spans.
func BenchmarkObservedRequest(b *testing.B) {
	p, ep := benchProxy(b)
	answer := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if x := exchangeOf(r.Context()); x != nil && x.direction == outbound {
			x.service, x.route, x.endpoint = "demo/api", "HTTPRoute demo/api", ep
		}
		w.WriteHeader(http.StatusOK)
	})
	peer, err := x509.ParseCertificate(benchPeerCert(b))
	if err != nil {
		b.Fatal(err)
	}
	for _, direction := range []string{outbound, inbound} {
		b.Run(direction, func(b *testing.B) {
			h := p.observed(direction, answer)
			r := httptest.NewRequest(http.MethodGet, "http://api.demo/orders/42", nil)
			if direction == inbound {
				r.Header.Set(meshheader.Proto, meshheader.ProtoHTTP1)
				r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}
			}
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

// BenchmarkMeshHeaders is the header work of one request on each side:
// outbound, the copy of the request for a try with its mesh headers and
// the peer's address; inbound, reading the mesh headers (tap, target
// port, protocol) and stripping them before the app sees the request.
func BenchmarkMeshHeaders(b *testing.B) {
	_, ep := benchProxy(b)
	r := httptest.NewRequest(http.MethodGet, "http://api.demo/orders/42", nil)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "bench/1")
	r.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	b.Run("outbound", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out := r.Clone(context.Background())
			out.URL.Host = ep.HostPort()
			maps.Copy(out.Header, meshHeader(8080, meshheader.ProtoHTTP1))
		}
	})
	b.Run("inbound", func(b *testing.B) {
		in := r.Header.Clone()
		in.Set(meshheader.TargetPort, "8080")
		in.Set(meshheader.Proto, meshheader.ProtoHTTP1)
		h := in.Clone()
		b.ReportAllocs()
		for b.Loop() {
			h[meshheader.TargetPort] = in[meshheader.TargetPort]
			h[meshheader.Proto] = in[meshheader.Proto]
			if meshheader.IsTap(h) {
				b.Fatal("a tap request")
			}
			if port, err := meshheader.ParseTargetPort(h); err != nil || port != 8080 {
				b.Fatal(port, err)
			}
			if _, err := meshheader.ParseProto(h); err != nil {
				b.Fatal(err)
			}
			meshheader.Strip(h)
		}
	})
}

// benchPeerCert is a self-signed certificate of the SPIFFE ID of a
// calling proxy, demo/web: what the inbound reads the source identity
// from.
func benchPeerCert(b *testing.B) []byte {
	b.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	id, err := url.Parse("spiffe://weft.local/ns/demo/sa/web")
	if err != nil {
		b.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(1), URIs: []*url.URL{id},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}, &x509.Certificate{SerialNumber: big.NewInt(1)}, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return der
}
