//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// curl runs the real curl and returns what it printed on stdout and, with
// -v, its trace on stderr.
func curl(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatal("curl is not installed: run `make deps`")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, trace bytes.Buffer
	cmd := exec.CommandContext(ctx, "curl", append([]string{"-sS", "--fail-with-body"}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &trace
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), trace.String())
	}
	return out.String(), trace.String()
}

// decodeEchoes reads the JSON documents curl printed, one per URL.
func decodeEchoes(t *testing.T, out string) []echo {
	t.Helper()
	var es []echo
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var e echo
		if err := dec.Decode(&e); errors.Is(err, io.EOF) {
			return es
		} else if err != nil {
			t.Fatalf("decoding %q: %v", out, err)
		}
		es = append(es, e)
	}
}

func TestProtocolsThroughTwoProxies(t *testing.T) {
	c := serverSide(t).c

	t.Run("http1 keep-alive", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d/a", c.http)
		out, trace := curl(t, "-v", url, url)
		es := decodeEchoes(t, out)
		if !strings.Contains(trace, "Re-using existing connection") {
			t.Errorf("curl did not reuse its connection to the proxy:\n%s", trace)
		}
		for _, e := range es {
			if e.Backend != "server-0" || e.Proto != "HTTP/1.1" || e.Path != "/a" || len(e.MeshHeaders) != 0 {
				t.Errorf("echo = %+v", e)
			}
		}
		if len(es) != 2 {
			t.Errorf("got %d answers, want 2", len(es))
		}
	})

	t.Run("http1 chunked upload and streamed response", func(t *testing.T) {
		body := filepath.Join(t.TempDir(), "body")
		if err := os.WriteFile(body, bytes.Repeat([]byte("x"), 3<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := curl(t, "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+body,
			fmt.Sprintf("http://127.0.0.1:%d/upload", c.http))
		e := decodeEchoes(t, out)
		if len(e) != 1 || e[0].BodySize != 3<<20 || e[0].Method != "POST" {
			t.Errorf("echo = %+v, want a 3 MiB POST", e)
		}
		out, _ = curl(t, fmt.Sprintf("http://127.0.0.1:%d/stream", c.http))
		if want := "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"; out != want {
			t.Errorf("streamed body = %q, want %q", out, want)
		}
	})

	t.Run("h2c", func(t *testing.T) {
		url := fmt.Sprintf("http://127.0.0.1:%d/h2", c.h2)
		out, _ := curl(t, "--http2-prior-knowledge", "-H", "Host: h2.example", url)
		e := decodeEchoes(t, out)
		if len(e) != 1 || e[0].Proto != "HTTP/2.0" || e[0].Host != "h2.example" || len(e[0].MeshHeaders) != 0 {
			t.Errorf("echo = %+v, want HTTP/2.0 at the app with the Host kept", e)
		}
	})

	t.Run("grpc", func(t *testing.T) { testGRPC(t, fmt.Sprintf("127.0.0.1:%d", c.grpc)) })

	t.Run("websocket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, fmt.Sprintf("ws://127.0.0.1:%d/ws", c.ws), nil)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer conn.CloseNow()
		for i := range 3 {
			msg := fmt.Sprintf("message %d", i)
			if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := conn.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if want := "server-0: " + msg; string(got) != want {
				t.Errorf("got %q, want %q", got, want)
			}
		}
		conn.Close(websocket.StatusNormalClosure, "")
	})

	for _, tc := range []struct {
		name string
		port int
	}{{"tcp", c.tcp}, {"tcp detected, server speaks first", c.detect}} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", tc.port), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			// The greeting must come although the client has said nothing.
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			r := bufio.NewReader(conn)
			if line, err := r.ReadString('\n'); err != nil || line != "hello from server-0\n" {
				t.Fatalf("greeting = %q, %v", line, err)
			}
			for i := range 3 {
				fmt.Fprintf(conn, "line %d\n", i)
				if line, err := r.ReadString('\n'); err != nil || line != fmt.Sprintf("server-0: line %d\n", i) {
					t.Fatalf("echo = %q, %v", line, err)
				}
			}
			// Half-close: the server sees EOF and closes; so do we.
			conn.(*net.TCPConn).CloseWrite()
			if rest, err := io.ReadAll(r); err != nil || len(rest) != 0 {
				t.Errorf("after half-close: %q, %v", rest, err)
			}
		})
	}
}

func testGRPC(t *testing.T, addr string) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("unary with trailers", func(t *testing.T) {
		// The interop server echoes this metadata back as a trailer.
		md := metadata.Pairs("x-grpc-test-echo-trailing-bin", string([]byte{0xab, 0xcd}))
		var trailer metadata.MD
		resp, err := tc.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testgrpc.SimpleRequest{ResponseSize: 1000}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetPayload().GetBody()) != 1000 {
			t.Errorf("payload %d bytes, want 1000", len(resp.GetPayload().GetBody()))
		}
		if got := trailer.Get("x-grpc-test-echo-trailing-bin"); len(got) != 1 || got[0] != string([]byte{0xab, 0xcd}) {
			t.Errorf("trailer = %v", trailer)
		}
	})

	t.Run("bidi streaming", func(t *testing.T) {
		stream, err := tc.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 20; i++ {
			if err := stream.Send(&testgrpc.StreamingOutputCallRequest{
				ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i * 10)}},
			}); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.GetPayload().GetBody()) != i*10 {
				t.Fatalf("message %d: %d bytes", i, len(resp.GetPayload().GetBody()))
			}
		}
		stream.CloseSend()
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("end of stream: %v", err)
		}
	})

	t.Run("deadline", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer dcancel()
		stream, err := tc.StreamingOutputCall(dctx, &testgrpc.StreamingOutputCallRequest{
			ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1, IntervalUs: 5_000_000}},
		})
		if err == nil {
			_, err = stream.Recv()
		}
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("err = %v, want DeadlineExceeded", err)
		}
	})

	t.Run("cancellation", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		stream, err := tc.FullDuplexCall(cctx)
		if err != nil {
			t.Fatal(err)
		}
		ccancel()
		if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("err = %v, want Canceled", err)
		}
	})
}
