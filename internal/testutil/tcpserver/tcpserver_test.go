package tcpserver

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

func TestServeHandsEachConnectionOverAndClosesIt(t *testing.T) {
	addr := Serve(t, func(c *net.TCPConn) {
		b, _ := io.ReadAll(c)
		c.Write(bytes.ToUpper(b))
	})
	for _, msg := range []string{"one", "two"} {
		c, err := net.DialTCP("tcp", nil, addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Write([]byte(msg))
		c.CloseWrite()
		got, err := io.ReadAll(c) // EOF: the server closed after handle
		c.Close()
		if err != nil || string(got) != string(bytes.ToUpper([]byte(msg))) {
			t.Fatalf("got %q, %v", got, err)
		}
	}
}
