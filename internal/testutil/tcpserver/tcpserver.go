// Package tcpserver runs a TCP server on loopback for a test: each
// connection is handed to a function and closed when it returns, and the
// listener closes when the test ends.
//
// Tests alone import it; it imports nothing of weft.
package tcpserver

import (
	"net"
	"testing"
)

// Serve listens on a loopback port, runs handle for each connection in a
// goroutine of its own, and returns the listener's address.
func Serve(t testing.TB, handle func(*net.TCPConn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr)
}
