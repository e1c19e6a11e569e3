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

// Accept takes over the connection of w, whose request is an HTTP/1.1
// CONNECT, confirms the tunnel with 200 and returns its end. The caller
// owns the connection from then on.
func Accept(w http.ResponseWriter) (*Conn, error) {
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, fmt.Errorf("tunnel: take over the connection: %w", err)
	}
	conn := &Conn{Conn: c, r: c}
	if n := brw.Reader.Buffered(); n > 0 {
		// Bytes the client sent after its request head, already read.
		early, _ := brw.Reader.Peek(n)
		conn.r = io.MultiReader(bytes.NewReader(bytes.Clone(early)), c)
	}
	if _, err := io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("tunnel: confirm: %w", err)
	}
	return conn, nil
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

// Serve answers a CONNECT that came as an HTTP/2 stream, as proxies
// before tunnels had connections of their own sent them (a mesh being
// upgraded has both): it confirms the tunnel with 200 and pipes it to
// upstream (the app) until upstream has finished sending. upstream is
// closed on return.
//
// An HTTP/2 handler can only end its response by returning, so once the
// app stops sending the tunnel ends, even if the app would have read
// more: a TCP server that half-closes and keeps reading is not carried.
func Serve(w http.ResponseWriter, r *http.Request, upstream HalfCloser) error {
	rc := http.NewResponseController(w)
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		upstream.Close()
		return fmt.Errorf("tunnel: confirm: %w", err)
	}
	down := &serverEnd{body: r.Body, w: w, rc: rc}
	return Pipe(down, upstream, 0)
}

// serverEnd is the handler's side of an HTTP/2 CONNECT stream.
type serverEnd struct {
	body io.ReadCloser
	w    io.Writer
	rc   *http.ResponseController
}

func (s *serverEnd) Read(p []byte) (int, error) { return s.body.Read(p) }

func (s *serverEnd) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err != nil {
		return n, err
	}
	// Flush each write: tunnels carry interactive protocols.
	return n, s.rc.Flush()
}

// CloseWrite does nothing: returning from the handler ends the response.
func (s *serverEnd) CloseWrite() error { return nil }

// Close stops reading the request body, which must not be touched once
// the handler returns.
func (s *serverEnd) Close() error { return s.body.Close() }
