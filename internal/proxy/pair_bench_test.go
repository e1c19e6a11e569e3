package proxy_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/weftmesh/weft/internal/model"
)

// BenchmarkRequestThroughPair is one HTTP/1.1 request with a 1 KiB answer
// through a client proxy and a server proxy to an app, over kept-alive
// connections: everything the pair does per request (the hop between
// them in plaintext here; make bench measures it with mTLS). Its CPU and
// allocation profiles are where to look first for the data plane's cost.
func BenchmarkRequestThroughPair(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1024)
	app := serveHTTP(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }))
	c, _ := meshPair(b, model.ProtocolHTTP1, model.ProtocolHTTP1, app)
	client := h1Client()
	url := "http://" + c.addr(80) + "/echo"
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(len(body)) {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
}
