package trace

import (
	"context"
	"io"
	"net/http"
	"sync"
)

type spanKey struct{}

// NewContext returns ctx carrying s, for the layers of the proxy below the
// one that started it (a retrying transport calls AddRetry on it).
func NewContext(ctx context.Context, s *Span) context.Context {
	return context.WithValue(ctx, spanKey{}, s)
}

// FromContext returns the span NewContext put in ctx, or nil (on which
// every Span method does nothing).
func FromContext(ctx context.Context) *Span {
	s, _ := ctx.Value(spanKey{}).(*Span)
	return s
}

// Handler wraps next so that every request gets a span of the given kind
// (KindServer for the inbound listener, KindClient for the outbound one):
// started, with r's headers rewritten to carry it, before next is called;
// put in the request's context (FromContext) for next to add the mesh
// attributes; ended with the response's status (and grpc-status) when
// next returns. A nil Tracer returns next itself.
func (t *Tracer) Handler(kind Kind, next http.Handler) http.Handler {
	if t == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := t.StartRequest(r, kind)
		if !s.IsRecording() {
			// Propagated already; nothing to record.
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			// After a panic (ReverseProxy aborts a broken body with one)
			// the span still ends, and the panic goes on.
			if sw.code == 0 {
				sw.code = http.StatusOK
			}
			s.SetHTTPStatus(sw.code)
			if code, ok := GRPCStatus(w.Header(), nil); ok {
				s.SetGRPCStatus(code)
			}
			s.End()
		}()
		next.ServeHTTP(sw, r.WithContext(NewContext(r.Context(), s)))
	})
}

// statusWriter notes the status a handler answers with. Unwrap lets
// http.ResponseController reach Flush, Hijack and deadlines beneath it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Transport wraps next so that every request it carries gets a client
// span: the child of the context in the request's headers, which the
// request then carries instead. The span ends when the response body is
// read to its end or closed (so it covers streaming and sees gRPC
// trailers), or when next fails. The request's headers are cloned before
// they are rewritten, as a RoundTripper must not change its request. A
// nil Tracer returns next itself.
//
// Inside the proxy, wrap the transport that tries a request (and retries
// it) once per request: AddRetry on FromContext(req.Context()) counts the
// tries, when the span is also put in the request's context.
func (t *Tracer) Transport(next http.RoundTripper) http.RoundTripper {
	if t == nil {
		return next
	}
	return roundTripper{t, next}
}

type roundTripper struct {
	t    *Tracer
	next http.RoundTripper
}

func (rt roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	out := new(http.Request)
	*out = *req
	out.Header = req.Header.Clone()
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	s := rt.t.StartRequest(out, KindClient)
	if s.IsRecording() {
		out = out.WithContext(NewContext(out.Context(), s))
	}
	resp, err := rt.next.RoundTrip(out)
	if err != nil {
		s.SetError(err)
		s.End()
		return resp, err
	}
	s.SetResponse(resp)
	if resp.Body == nil || resp.Body == http.NoBody || !s.IsRecording() {
		s.End()
		return resp, nil
	}
	resp.Body = &endOnClose{ReadCloser: resp.Body, s: s, resp: resp}
	return resp, nil
}

// endOnClose ends a span when its response body is done.
type endOnClose struct {
	io.ReadCloser
	s    *Span
	resp *http.Response
	once sync.Once
}

func (b *endOnClose) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end(err)
	}
	return n, err
}

func (b *endOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.end(nil)
	return err
}

func (b *endOnClose) end(err error) {
	b.once.Do(func() {
		if err != nil && err != io.EOF {
			b.s.SetError(err)
		}
		b.s.SetResponse(b.resp) // trailers are known now
		b.s.End()
	})
}
