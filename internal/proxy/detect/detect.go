package detect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// Result is what the first bytes of a connection look like.
type Result int

const (
	// NeedMore means the bytes so far fit more than one answer.
	NeedMore Result = iota
	HTTP1
	HTTP2
	TCP
)

func (r Result) String() string {
	switch r {
	case NeedMore:
		return "need-more"
	case HTTP1:
		return "http1"
	case HTTP2:
		return "http2"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("Result(%d)", int(r))
}

// MaxPeek bounds how much Classify looks at: a request line longer than
// this is treated as opaque bytes rather than buffered without limit.
const MaxPeek = 8 << 10

// Preface is the HTTP/2 client connection preface (RFC 9113 §3.4).
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Classify looks at the first bytes a client sent. It answers NeedMore
// only while b is shorter than MaxPeek and could still become more than
// one thing.
func Classify(b []byte) Result {
	if len(b) == 0 {
		return NeedMore
	}
	n := min(len(b), len(Preface))
	if bytes.Equal(b[:n], []byte(Preface[:n])) {
		if n == len(Preface) {
			return HTTP2
		}
		return NeedMore
	}
	r := classifyRequestLine(b)
	if r == NeedMore && len(b) >= MaxPeek {
		return TCP
	}
	return r
}

// classifyRequestLine checks b against an HTTP/1 request line,
// "token SP request-target SP HTTP/1.d CRLF" (RFC 9112 §3), as far as b
// goes.
func classifyRequestLine(b []byte) Result {
	i := 0
	for i < len(b) && isTokenChar(b[i]) {
		i++
	}
	if i == len(b) {
		return NeedMore
	}
	if i == 0 || b[i] != ' ' {
		return TCP
	}
	i++
	start := i
	for i < len(b) && b[i] > ' ' && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return NeedMore
	}
	if i == start || b[i] != ' ' {
		return TCP
	}
	i++
	const version = "HTTP/1."
	rest := b[i:]
	n := min(len(rest), len(version))
	if !bytes.Equal(rest[:n], []byte(version[:n])) {
		return TCP
	}
	if len(rest) <= len(version) {
		return NeedMore
	}
	if d := rest[len(version)]; d < '0' || d > '9' {
		return TCP
	}
	rest = rest[len(version)+1:]
	switch {
	case len(rest) == 0:
		return NeedMore
	case rest[0] == '\n':
		// net/http accepts a bare LF, so we do too.
		return HTTP1
	case rest[0] != '\r':
		return TCP
	case len(rest) == 1:
		return NeedMore
	case rest[1] == '\n':
		return HTTP1
	}
	return TCP
}

// isTokenChar reports whether c may appear in an RFC 9110 token (a method).
func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// Detect reads from c until Classify decides or timeout passes, and
// returns the answer with a connection that replays what was read. A
// client that sends nothing in time, or closes before deciding, is TCP.
// The error is only for a connection that failed outright.
func Detect(c net.Conn, timeout time.Duration) (Result, *Conn, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return TCP, nil, fmt.Errorf("detect: set read deadline: %w", err)
	}
	buf := make([]byte, 0, 1024)
	res := NeedMore
	for res == NeedMore {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, min(cap(buf), MaxPeek-len(buf)))...)[:len(buf)]
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		res = Classify(buf)
		if err == nil || res != NeedMore {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) {
			res = TCP
			break
		}
		return TCP, nil, fmt.Errorf("detect: read: %w", err)
	}
	if err := c.SetReadDeadline(time.Time{}); err != nil {
		return TCP, nil, fmt.Errorf("detect: clear read deadline: %w", err)
	}
	return res, Replay(c, buf), nil
}

// Conn is a connection whose first reads return bytes already taken from
// it. It keeps CloseWrite so half-close still works through it.
type Conn struct {
	net.Conn
	prefix []byte
}

// Replay returns c with prefix put back in front of its unread bytes.
func Replay(c net.Conn, prefix []byte) *Conn {
	return &Conn{Conn: c, prefix: prefix}
}

func (c *Conn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// CloseWrite half-closes the underlying connection when it can.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("detect: %T cannot half-close: %w", c.Conn, errors.ErrUnsupported)
}
