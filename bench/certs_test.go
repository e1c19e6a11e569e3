package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
)

// The throwaway CA's leaves must do what the peers' configurations ask of
// them: the server hop proves its name and requires a client certificate
// chained to the CA.
func TestMakeCertsMutualTLS(t *testing.T) {
	c, err := makeCerts(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	serverCert, err := tls.LoadX509KeyPair(c.ServerCert, c.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	clientCert, err := tls.LoadX509KeyPair(c.ClientCert, c.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	// HAProxy's bundles: certificate then key, the same pair.
	for _, b := range []string{c.ServerBundle, c.ClientBundle} {
		if _, err := tls.LoadX509KeyPair(b, b); err != nil {
			t.Errorf("bundle %s: %v", b, err)
		}
	}
	for _, tc := range []struct {
		name       string
		clientCert []tls.Certificate
		serverName string
		wantErr    string
	}{
		{"client certificate and server name", []tls.Certificate{clientCert}, c.ServerName, ""},
		{"no client certificate", nil, c.ServerName, "certificate required"},
		{"wrong server name", []tls.Certificate{clientCert}, "other.test", "not other.test"},
		// The server's certificate is no client certificate.
		{"server certificate as client", []tls.Certificate{serverCert}, c.ServerName, "bad certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
				Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				_ = conn.(*tls.Conn).Handshake()
				_, _ = conn.Write([]byte("ok"))
			}()
			conn, err := tls.Dial("tcp", l.Addr().String(), &tls.Config{RootCAs: pool, ServerName: tc.serverName, Certificates: tc.clientCert})
			if err == nil {
				// TLS 1.3: a refused client certificate shows on the first read.
				_, err = conn.Read(make([]byte, 2))
				conn.Close()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("handshake: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("handshake error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
