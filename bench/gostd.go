package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// The gostd setup is the floor weft's request path stands on: a pair of
// hops made of Go's standard library alone (net/http's server,
// httputil.ReverseProxy, http.Transport, crypto/tls) in weft's shape,
// HTTP/2 over mTLS between the hops and the backend's own protocol after
// them, with none of weft's work (no routing, balancing, retries,
// authorization, metrics, tracing or tap). What weft spends above it is
// what weft itself costs. It is not one of the peers weft's targets name.
type goHopConfig struct {
	Role       string   `json:"role"`
	Listen     hopPorts `json:"listen"`
	Upstream   hopPorts `json:"upstream"`
	CA         string   `json:"ca"`
	Cert       string   `json:"cert"`
	Key        string   `json:"key"`
	ServerName string   `json:"serverName"`
}

type hopPorts struct {
	HTTP       int `json:"http"`
	H2         int `json:"h2"`
	GRPC       int `json:"grpc"`
	GRPCStream int `json:"grpcStream"`
	TCP        int `json:"tcp"`
}

// goHop runs one hop of the gostd setup from the configuration at path
// until the runner stops it.
func goHop(path string) error {
	var c goHopConfig
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("gostd hop: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("gostd hop %s: %w", path, err)
	}
	leaf, err := tls.LoadX509KeyPair(c.Cert, c.Key)
	if err != nil {
		return fmt.Errorf("gostd hop %s: %w", path, err)
	}
	caPEM, err := os.ReadFile(c.CA)
	if err != nil {
		return fmt.Errorf("gostd hop %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("gostd hop %s: no certificate in %s", path, c.CA)
	}
	errs := make(chan error, 8)
	switch c.Role {
	case "client":
		goHopClient(c, leaf, pool, errs)
	case "server":
		goHopServer(c, leaf, pool, errs)
	default:
		return fmt.Errorf("gostd hop %s: role %q: want client or server", path, c.Role)
	}
	return <-errs
}

// goHopClient takes plaintext (HTTP/1.1 and h2c) and TCP from the load
// generator and carries it to the server hop over mTLS: requests as
// HTTP/2 on pooled connections, each TCP connection on its own.
func goHopClient(c goHopConfig, leaf tls.Certificate, pool *x509.CertPool, errs chan<- error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf}, RootCAs: pool, ServerName: c.ServerName}
	var h2 http.Protocols
	h2.SetHTTP2(true)
	tr := &http.Transport{TLSClientConfig: tlsConf, Protocols: &h2, MaxIdleConnsPerHost: 128, DisableCompression: true}
	var in http.Protocols
	in.SetHTTP1(true)
	in.SetUnencryptedHTTP2(true)
	to := func(port int) http.Handler { return reverseProxy("https", port, tr) }
	serveHTTP(c.Listen.HTTP, &in, nil, to(c.Upstream.HTTP), errs)
	serveHTTP(c.Listen.H2, &in, nil, to(c.Upstream.HTTP), errs)
	serveHTTP(c.Listen.GRPC, &in, nil, to(c.Upstream.GRPC), errs)
	serveHTTP(c.Listen.GRPCStream, &in, nil, to(c.Upstream.GRPCStream), errs)
	serveTCP(c.Listen.TCP, nil, func() (net.Conn, error) {
		return tls.Dial("tcp", addr(c.Upstream.TCP), tlsConf)
	}, errs)
}

// goHopServer takes mTLS from the client hop, a client certificate
// required and verified, and hands it to the backend: HTTP/1.1 with
// keep-alive, gRPC as h2c, TCP as it is.
func goHopServer(c goHopConfig, leaf tls.Certificate, pool *x509.CertPool, errs chan<- error) {
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{leaf}, ClientCAs: pool,
		ClientAuth: tls.RequireAndVerifyClientCert, NextProtos: []string{"h2", "http/1.1"}}
	var in http.Protocols
	in.SetHTTP1(true)
	in.SetHTTP2(true)
	h1 := &http.Transport{MaxIdleConnsPerHost: 128, DisableCompression: true}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	grpc := &http.Transport{Protocols: &h2c, DisableCompression: true}
	serveHTTP(c.Listen.HTTP, &in, tlsConf, reverseProxy("http", c.Upstream.HTTP, h1), errs)
	serveHTTP(c.Listen.GRPC, &in, tlsConf, reverseProxy("http", c.Upstream.GRPC, grpc), errs)
	serveHTTP(c.Listen.GRPCStream, &in, tlsConf, reverseProxy("http", c.Upstream.GRPCStream, grpc), errs)
	serveTCP(c.Listen.TCP, tlsConf, func() (net.Conn, error) { return net.Dial("tcp", addr(c.Upstream.TCP)) }, errs)
}

func reverseProxy(scheme string, port int, tr http.RoundTripper) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: scheme, Host: addr(port)})
	rp.Transport = tr
	return rp
}

// serveHTTP serves h on port (nothing when port is 0), over TLS when
// tlsConf is set; a failure to serve goes to errs.
func serveHTTP(port int, protos *http.Protocols, tlsConf *tls.Config, h http.Handler, errs chan<- error) {
	if port == 0 {
		return
	}
	srv := &http.Server{Addr: addr(port), Handler: h, Protocols: protos, TLSConfig: tlsConf, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		var err error
		if tlsConf != nil {
			err = srv.ListenAndServeTLS("", "")
		} else {
			err = srv.ListenAndServe()
		}
		errs <- fmt.Errorf("gostd hop %s: %w", srv.Addr, err)
	}()
}

// serveTCP pipes every connection accepted on port (over TLS when
// tlsConf is set) to one from dial, with half-close.
func serveTCP(port int, tlsConf *tls.Config, dial func() (net.Conn, error), errs chan<- error) {
	if port == 0 {
		return
	}
	ln, err := net.Listen("tcp", addr(port))
	if err != nil {
		errs <- fmt.Errorf("gostd hop: %w", err)
		return
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	go func() {
		for {
			down, err := ln.Accept()
			if err != nil {
				errs <- fmt.Errorf("gostd hop %s: %w", ln.Addr(), err)
				return
			}
			go func() {
				defer down.Close()
				up, err := dial()
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{})
				go func() {
					copyThenCloseWrite(up, down)
					close(done)
				}()
				copyThenCloseWrite(down, up)
				<-done
			}()
		}
	}()
}

func copyThenCloseWrite(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
}
