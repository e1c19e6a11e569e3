// Package tcpserver runs a TCP server for a test: each connection is
// handed to a function and closed when it returns. Serve listens on
// loopback itself; Accept serves a listener the test made (in a network
// namespace, say).
//
// Tests alone import it; it imports nothing of weft.
package tcpserver

import (
	"net"
	"testing"
)

// Serve listens on a loopback port, runs handle for each connection in a
// goroutine of its own, and returns the listener's address; the listener
// closes when the test ends.
func Serve(t testing.TB, handle func(*net.TCPConn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	Accept(ln, func(c net.Conn) { handle(c.(*net.TCPConn)) })
	return ln.Addr().(*net.TCPAddr)
}

// Accept runs handle for each connection ln accepts, in a goroutine of its
// own, and closes the connection when handle returns; it stops when ln
// closes. It returns at once.
func Accept(ln net.Listener, handle func(net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
}
