package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Stream is the client end of a CONNECT stream: writes go to the peer as
// the request body, reads come from the response body.
type Stream struct {
	pw     *io.PipeWriter
	body   io.ReadCloser
	cancel context.CancelFunc
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

// Dial opens a CONNECT stream to the peer proxy at peer through rt, with
// header h (the mesh headers naming the target). The stream lives until
// Close or until ctx ends.
func Dial(ctx context.Context, rt http.RoundTripper, peer string, h http.Header) (*Stream, error) {
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodConnect, "http://"+peer, pr)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("tunnel to %s: %w", peer, err)
	}
	req.Header = h
	req.ContentLength = -1
	resp, err := rt.RoundTrip(req)
	if err != nil {
		cancel()
		pw.Close()
		return nil, fmt.Errorf("tunnel to %s: %w", peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		cancel()
		pw.Close()
		return nil, &StatusError{Peer: peer, Code: resp.StatusCode, Msg: strings.TrimSpace(string(msg))}
	}
	return &Stream{pw: pw, body: resp.Body, cancel: cancel}, nil
}

func (s *Stream) Read(p []byte) (int, error)  { return s.body.Read(p) }
func (s *Stream) Write(p []byte) (int, error) { return s.pw.Write(p) }

// CloseWrite ends the request body: the peer sees EOF.
func (s *Stream) CloseWrite() error { return s.pw.Close() }

// Close resets the stream in both directions.
func (s *Stream) Close() error {
	s.cancel()
	s.pw.CloseWithError(errors.New("tunnel closed"))
	return s.body.Close()
}

// Serve answers a CONNECT request on the peer side: it confirms the
// tunnel with 200 and pipes it to upstream (the app) until upstream has
// finished sending. upstream is closed on return.
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

// serverEnd is the handler's side of a CONNECT stream.
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
