package trace

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Exporter sends batches of spans to a collector. Export is called from
// one goroutine at a time and must return soon after ctx ends (Shutdown
// of the Tracer waits for it); Shutdown is called once, after the last
// Export.
type Exporter interface {
	Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) error
	Shutdown(ctx context.Context) error
}

// RetryableError is an export failure worth trying again (the collector
// is unavailable or asks to slow down), as OTLP classifies them.
type RetryableError struct {
	Err   error
	After time.Duration // what the collector asked to wait, 0 if nothing
}

func (e *RetryableError) Error() string { return e.Err.Error() }
func (e *RetryableError) Unwrap() error { return e.Err }

// grpcExporter calls the collector's TraceService over gRPC.
type grpcExporter struct {
	conn   *grpc.ClientConn
	client coltracepb.TraceServiceClient
	md     metadata.MD
	target string
}

// NewGRPCExporter exports to an OTLP/gRPC collector at target (host:port
// or a gRPC target URI), with TLS when tlsConf is not nil. It does not
// connect until the first export.
func NewGRPCExporter(target string, tlsConf *tls.Config, headers map[string]string) (Exporter, error) {
	if target == "" {
		return nil, errors.New("OTLP/gRPC exporter: no collector endpoint")
	}
	creds := insecure.NewCredentials()
	if tlsConf != nil {
		creds = credentials.NewTLS(tlsConf)
	}
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("OTLP/gRPC exporter for %s: %w", target, err)
	}
	e := &grpcExporter{conn: conn, client: coltracepb.NewTraceServiceClient(conn), target: target}
	if len(headers) > 0 {
		e.md = metadata.New(headers)
	}
	return e, nil
}

func (e *grpcExporter) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) error {
	if e.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, e.md)
	}
	_, err := e.client.Export(ctx, req)
	if err == nil {
		return nil
	}
	err = fmt.Errorf("OTLP/gRPC export to %s: %w", e.target, err)
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return &RetryableError{Err: err}
	}
	return err
}

func (e *grpcExporter) Shutdown(context.Context) error {
	if err := e.conn.Close(); err != nil {
		return fmt.Errorf("closing OTLP/gRPC connection to %s: %w", e.target, err)
	}
	return nil
}

// httpExporter POSTs protobuf to the collector's /v1/traces.
type httpExporter struct {
	url     string
	client  *http.Client
	headers http.Header
}

// maxResponse bounds how much of a collector's answer is read.
const maxResponse = 64 << 10

// NewHTTPExporter exports to an OTLP/HTTP collector at endpoint, a URL
// whose missing path means /v1/traces, with tlsConf for https (nil: the
// system roots).
func NewHTTPExporter(endpoint string, tlsConf *tls.Config, headers map[string]string) (Exporter, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("OTLP/HTTP exporter: endpoint: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("OTLP/HTTP exporter: endpoint %q is not an http or https URL", endpoint)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/traces"
	}
	tr := &http.Transport{
		Proxy:               nil, // the collector is reached directly
		TLSClientConfig:     tlsConf,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	h := make(http.Header, len(headers)+1)
	for k, v := range headers {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/x-protobuf")
	return &httpExporter{url: u.String(), client: &http.Client{Transport: tr}, headers: h}, nil
}

func (e *httpExporter) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) error {
	body, err := proto.Marshal(req)
	if err != nil {
		return fmt.Errorf("OTLP/HTTP export: encoding spans: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("OTLP/HTTP export to %s: %w", e.url, err)
	}
	hreq.Header = e.headers.Clone()
	resp, err := e.client.Do(hreq)
	if err != nil {
		return &RetryableError{Err: fmt.Errorf("OTLP/HTTP export to %s: %w", e.url, err)}
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("OTLP/HTTP export to %s: %s%s", e.url, resp.Status, responseMessage(resp.Header.Get("Content-Type"), msg))
	switch resp.StatusCode {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		re := &RetryableError{Err: err}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			re.After = time.Duration(s) * time.Second
		}
		return re
	}
	return err
}

// responseMessage is the reason an OTLP/HTTP collector gives with an
// error status: a google.rpc.Status in the response's encoding, or text.
func responseMessage(contentType string, body []byte) string {
	var st spb.Status
	var m string
	if strings.HasPrefix(contentType, "application/x-protobuf") {
		if proto.Unmarshal(body, &st) == nil {
			m = st.GetMessage()
		}
	} else if strings.HasPrefix(contentType, "text/plain") {
		m = strings.TrimSpace(string(body))
	}
	if m == "" {
		return ""
	}
	return ": " + strconv.QuoteToASCII(bound(m, maxMessageLen))
}

func (e *httpExporter) Shutdown(context.Context) error {
	e.client.CloseIdleConnections()
	return nil
}
