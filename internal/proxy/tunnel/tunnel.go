package tunnel

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// answerTimeout bounds how long a peer proxy may take to answer a CONNECT.
const answerTimeout = 10 * time.Second

// Stream is the client end of a tunnel: after the CONNECT, its connection
// carries the bytes as they are.
type Stream struct {
	c net.Conn
	// r holds what the peer sent after its answer's head, then reads on.
	r    *bufio.Reader
	stop func() bool
}

// StatusError is a peer proxy refusing a tunnel.
type StatusError struct {
	Peer string
	Code int
	// Msg is the start of the peer's answer, which says why.
	Msg string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("peer proxy %s refused tunnel: %d %s", e.Peer, e.Code, e.Msg)
}

// Dial opens a tunnel to the peer proxy at peer on a connection of its own
// from dial: an HTTP/1.1 CONNECT with header h (the mesh headers naming
// the target), then raw bytes both ways. The tunnel lives until Close or
// until ctx ends. Errors from dial are wrapped, not replaced, so callers
// still tell a peer they could not reach.
func Dial(ctx context.Context, dial func(ctx context.Context, addr string) (net.Conn, error), peer string, h http.Header) (*Stream, error) {
	c, err := dial(ctx, peer)
	if err != nil {
		return nil, fmt.Errorf("tunnel to %s: %w", peer, err)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	fail := func(err error) (*Stream, error) {
		stop()
		c.Close()
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, fmt.Errorf("tunnel to %s: %w", peer, err)
	}
	c.SetDeadline(time.Now().Add(answerTimeout))
	bw := bufio.NewWriter(c)
	fmt.Fprintf(bw, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", peer, peer)
	if err := h.Write(bw); err != nil {
		return fail(err)
	}
	bw.WriteString("\r\n")
	if err := bw.Flush(); err != nil {
		return fail(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return fail(err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		stop()
		c.Close()
		return nil, &StatusError{Peer: peer, Code: resp.StatusCode, Msg: strings.TrimSpace(string(msg))}
	}
	c.SetDeadline(time.Time{})
	return &Stream{c: c, r: br, stop: stop}, nil
}

func (s *Stream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *Stream) Write(p []byte) (int, error) { return s.c.Write(p) }

// CloseWrite stops sending: the peer reads EOF, and may go on answering.
func (s *Stream) CloseWrite() error { return closeWrite(s.c) }

// Close ends the tunnel in both directions.
func (s *Stream) Close() error {
	s.stop()
	return s.c.Close()
}

// Conn is the peer side's end of a tunnel an HTTP/1.1 CONNECT opened: the
// connection the request came on, taken over from the HTTP server.
type Conn struct {
	net.Conn
	r io.Reader
}

// Take takes over the connection of w, whose request is an HTTP/1.1
// CONNECT; the caller owns it from then on, and Confirm opens the tunnel.
// When Take fails, w is still the server's, to answer.
func Take(w http.ResponseWriter) (*Conn, error) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("tunnel: take over the connection: %w", err)
	}
	// The server's deadlines were for reading a request, not for a tunnel
	// that lasts as long as its ends want.
	_ = c.SetDeadline(time.Time{})
	conn := &Conn{Conn: c, r: c}
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent after its request head, already read.
		early, _ := brw.Reader.Peek(n)
		conn.r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), c)
	}
	return conn, nil
}

// Confirm answers the CONNECT with 200: the tunnel is open.
func (c *Conn) Confirm() error {
	if _, err := io.WriteString(c.Conn, "HTTP/1.1 200 OK\r\n\r\n"); err != nil {
		return fmt.Errorf("tunnel: confirm: %w", err)
	}
	return nil
}

func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite stops sending: the client reads EOF, and may go on sending.
func (c *Conn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return fmt.Errorf("tunnel: %T cannot half-close: %w", c, errors.ErrUnsupported)
}
