package detect

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		desc string
		in   string
		want Result
	}{
		{desc: "empty", in: "", want: NeedMore},
		{desc: "preface", in: Preface, want: HTTP2},
		{desc: "preface and frames", in: Preface + "\x00\x00\x00\x04", want: HTTP2},
		{desc: "partial preface", in: "PRI * HTTP/2", want: NeedMore},
		{desc: "get", in: "GET / HTTP/1.1\r\n", want: HTTP1},
		{desc: "get with headers", in: "GET /a?b=c HTTP/1.1\r\nHost: x\r\n\r\n", want: HTTP1},
		{desc: "http/1.0", in: "POST /x HTTP/1.0\r\n", want: HTTP1},
		{desc: "bare LF", in: "GET / HTTP/1.1\n", want: HTTP1},
		{desc: "custom method", in: "PURGE /cache HTTP/1.1\r\n", want: HTTP1},
		{desc: "absolute form", in: "GET http://a.b/c HTTP/1.1\r\n", want: HTTP1},
		{desc: "partial method", in: "GE", want: NeedMore},
		{desc: "partial target", in: "GET /abc", want: NeedMore},
		{desc: "partial version", in: "GET / HTTP/1", want: NeedMore},
		{desc: "waiting for LF", in: "GET / HTTP/1.1\r", want: NeedMore},
		{desc: "http/2 in request line", in: "GET / HTTP/2.0\r\n", want: TCP},
		{desc: "binary", in: "\x16\x03\x01\x02\x00", want: TCP},
		{desc: "redis inline", in: "*1\r\n$4\r\nPING\r\n", want: TCP},
		{desc: "leading space", in: " GET / HTTP/1.1\r\n", want: TCP},
		{desc: "double space", in: "GET  / HTTP/1.1\r\n", want: TCP},
		{desc: "CR after version digit junk", in: "GET / HTTP/1.1x", want: TCP},
		{desc: "CR without LF", in: "GET / HTTP/1.1\rx", want: TCP},
		{desc: "control char in target", in: "GET /\x01 HTTP/1.1\r\n", want: TCP},
		{desc: "endless target", in: "GET /" + strings.Repeat("a", MaxPeek), want: TCP},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := Classify([]byte(tc.in)); got != tc.want {
				t.Fatalf("Classify(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestDetect(t *testing.T) {
	tests := []struct {
		desc  string
		send  []string // written with a pause between, to split reads
		close bool
		want  Result
	}{
		{desc: "http1 in one write", send: []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n"}, want: HTTP1},
		{desc: "http1 split", send: []string{"GE", "T / HT", "TP/1.1\r\n\r\n"}, want: HTTP1},
		{desc: "h2 preface split", send: []string{"PRI * HTTP/2.0\r\n", "\r\nSM\r\n\r\n"}, want: HTTP2},
		{desc: "opaque", send: []string{"\x00\x01binary"}, want: TCP},
		{desc: "silent client", want: TCP},
		{desc: "stalls mid request line", send: []string{"GET /"}, want: TCP},
		{desc: "closes early", send: []string{"GET"}, close: true, want: TCP},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			client, server := tcpPair(t)
			go func() {
				for _, s := range tc.send {
					if _, err := client.Write([]byte(s)); err != nil {
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
				if tc.close {
					client.Close()
				}
			}()
			res, c, err := Detect(server, 200*time.Millisecond)
			if err != nil {
				t.Fatalf("Detect: %v", err)
			}
			if res != tc.want {
				t.Fatalf("Detect = %v, want %v", res, tc.want)
			}
			// Everything the client sent comes back, in order.
			want := strings.Join(tc.send, "")
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil {
				t.Fatalf("reading replayed bytes: %v", err)
			}
			if string(got) != want {
				t.Fatalf("replayed %q, want %q", got, want)
			}
		})
	}
}

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// FuzzClassify checks that Classify never panics, that a decision is
// stable as more bytes arrive, and that it always decides by MaxPeek.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{"", Preface, "GET / HTTP/1.1\r\n", "GET /", "\x16\x03\x01", "SSH-2.0-OpenSSH\r\n", "PRI * HTTP/1.1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		full := Classify(b)
		if len(b) >= MaxPeek && full == NeedMore {
			t.Fatalf("Classify(%d bytes) = NeedMore past MaxPeek", len(b))
		}
		for i := range b {
			if r := Classify(b[:i]); r != NeedMore && r != full {
				t.Fatalf("Classify(%q) = %v but Classify(%q) = %v", b[:i], r, b, full)
			}
		}
	})
}
