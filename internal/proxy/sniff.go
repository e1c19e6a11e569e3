package proxy

import (
	"bufio"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// sniffTimeout bounds how long a new inbound connection may stay silent
// before the proxy knows whether it speaks TLS.
const sniffTimeout = 10 * time.Second

// tlsRecordHandshake is the first byte of every TLS connection.
const tlsRecordHandshake = 0x16

// mixedListener is the inbound listener with mTLS on: it hands out TLS
// server connections for clients that start a TLS handshake, and, only
// while permissive says so, plaintext connections for clients from
// outside the mesh. Each connection is classified on a goroutine of its
// own, so a silent client never holds up the others.
type mixedListener struct {
	inner      net.Listener
	tls        *tls.Config
	permissive func() bool
	log        *slog.Logger

	conns chan net.Conn
	errs  chan error
	done  chan struct{}
	once  sync.Once
}

func newMixedListener(inner net.Listener, cfg *tls.Config, permissive func() bool, logger *slog.Logger) *mixedListener {
	l := &mixedListener{
		inner: inner, tls: cfg, permissive: permissive, log: logger,
		conns: make(chan net.Conn), errs: make(chan error, 1), done: make(chan struct{}),
	}
	go l.acceptLoop()
	return l
}

func (l *mixedListener) acceptLoop() {
	for {
		c, err := l.inner.Accept()
		if err != nil {
			select {
			case l.errs <- err:
			case <-l.done:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go l.classify(c)
	}
}

func (l *mixedListener) classify(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	br := bufio.NewReaderSize(c, 1)
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return
	}
	var conn net.Conn = &peekedConn{Conn: c, r: br}
	switch {
	case first[0] == tlsRecordHandshake:
		conn = tls.Server(conn, l.tls)
	case !l.permissive():
		l.log.Warn("inbound plaintext connection refused: the workload is in strict mTLS mode", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	select {
	case l.conns <- conn:
	case <-l.done:
		conn.Close()
	}
}

func (l *mixedListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *mixedListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.inner.Close()
}

func (l *mixedListener) Addr() net.Addr { return l.inner.Addr() }

// peekedConn reads first what classify peeked.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }
