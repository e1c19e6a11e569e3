package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/weftmesh/weft/internal/model"
)

func TestWebSocket(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Weft-Target-Port") != "" {
			http.Error(w, "mesh header leaked to the app", 500)
			return
		}
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		for {
			typ, msg, err := ws.Read(r.Context())
			if err != nil {
				return
			}
			if err := ws.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	for _, proto := range []model.Protocol{model.ProtocolHTTP1, model.ProtocolDetect} {
		t.Run("service protocol "+strconv.Quote(string(proto)), func(t *testing.T) {
			c, _ := meshPair(t, proto, proto, serveHTTP(t, app))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// The app fails the handshake if the mesh header gets through.
			ws, resp, err := websocket.Dial(ctx, "ws://"+c.addr(80)+"/ws", &websocket.DialOptions{
				HTTPHeader: http.Header{"Weft-Target-Port": {"1"}},
			})
			if err != nil {
				t.Fatalf("dial through the mesh: %v (response %v)", err, resp)
			}
			defer ws.CloseNow()
			for i := range 3 {
				msg := "hello " + strconv.Itoa(i)
				if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				_, got, err := ws.Read(ctx)
				if err != nil {
					t.Fatalf("read %d: %v", i, err)
				}
				if string(got) != "echo:"+msg {
					t.Fatalf("read %q, want %q", got, "echo:"+msg)
				}
			}
			if err := ws.Close(websocket.StatusNormalClosure, "done"); err != nil {
				t.Fatalf("close handshake: %v", err)
			}
			// The calling proxy counts the upgrade with the app's status,
			// read as the answer passed through: one success, no failure.
			switched := map[string]string{"direction": "outbound", "status_code": "101", "classification": "success"}
			waitFor(t, "the upgrade counted", func() bool {
				return sum(scrape(t, c.proxy), "weft_responses_total", switched) == 1
			})
			if n := sum(scrape(t, c.proxy), "weft_responses_total", map[string]string{"direction": "outbound", "classification": "failure"}); n != 0 {
				t.Errorf("%v outbound upgrades counted as failures", n)
			}
		})
	}
}

// upperAfterEOF reads until the client half-closes, then answers with
// everything upper-cased: it needs half-close carried end to end.
func upperAfterEOF(c net.Conn) {
	b, err := io.ReadAll(c)
	if err != nil {
		return
	}
	c.Write(bytes.ToUpper(b))
}

// greeter speaks first, then echoes one line.
func greeter(c net.Conn) {
	c.Write([]byte("220 weft-test ready\r\n"))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	c.Write([]byte("got " + line))
}

func TestOpaqueTCP(t *testing.T) {
	for _, proto := range []model.Protocol{model.ProtocolTCP, model.ProtocolDetect} {
		t.Run("service protocol "+strconv.Quote(string(proto)), func(t *testing.T) {
			t.Run("client half-closes", func(t *testing.T) {
				c, srv := meshPair(t, proto, proto, serveTCP(t, upperAfterEOF))
				conn := dial(t, c.addr(80))
				payload := strings.Repeat("opaque bytes\x00\x01", 20000)
				go func() {
					conn.Write([]byte(payload))
					conn.(*net.TCPConn).CloseWrite()
				}()
				got, err := io.ReadAll(conn)
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if string(got) != strings.ToUpper(payload) {
					t.Fatalf("got %d bytes back, want %d upper-cased", len(got), len(payload))
				}
				// The peer proxy confirmed the tunnel on the connection it
				// took over: it counts as one success, none failed.
				inbound := map[string]string{"direction": "inbound", "status_code": "200", "classification": "success"}
				waitFor(t, "the inbound tunnel counted", func() bool {
					return sum(scrape(t, srv.proxy), "weft_responses_total", inbound) == 1
				})
				if n := sum(scrape(t, srv.proxy), "weft_responses_total", map[string]string{"direction": "inbound", "classification": "failure"}); n != 0 {
					t.Errorf("%v inbound tunnels counted as failures", n)
				}
			})
			t.Run("server speaks first", func(t *testing.T) {
				c, _ := meshPair(t, proto, proto, serveTCP(t, greeter))
				conn := dial(t, c.addr(80))
				r := bufio.NewReader(conn)
				greeting, err := r.ReadString('\n')
				if err != nil || greeting != "220 weft-test ready\r\n" {
					t.Fatalf("greeting %q, %v", greeting, err)
				}
				conn.Write([]byte("HELO x\n"))
				answer, err := r.ReadString('\n')
				if err != nil || answer != "got HELO x\n" {
					t.Fatalf("answer %q, %v", answer, err)
				}
				// The app closed: the client must see EOF, not hang.
				if _, err := r.ReadByte(); err != io.EOF {
					t.Fatalf("after the app closed, read = %v, want EOF", err)
				}
			})
		})
	}
}

// dial connects to addr with a read deadline that keeps a broken test
// from hanging.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return conn
}
