package proxy

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// gRPC clients read errors from grpc-status, not from HTTP statuses, so
// the proxy answers a gRPC request it cannot carry with a gRPC
// "trailers-only" response (PROTOCOL-HTTP2.md in the gRPC repository).

// gRPC status codes the proxy produces or reads.
const (
	grpcCancelled         = 1
	grpcUnknown           = 2
	grpcResourceExhausted = 8
	grpcDeadlineExceeded  = 4
	grpcPermissionDenied  = 7
	grpcUnimplemented     = 12
	grpcInternal          = 13
	grpcUnavailable       = 14
	grpcDataLoss          = 15
	grpcUnauthenticated   = 16
)

func isGRPC(r *http.Request) bool { return isGRPCContentType(r.Header.Get("Content-Type")) }

func isGRPCContentType(ct string) bool {
	return ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+") || strings.HasPrefix(ct, "application/grpc;")
}

// grpcCodeOf maps an HTTP status as gRPC's "HTTP to gRPC status code
// mapping" does.
func grpcCodeOf(httpCode int) int {
	switch httpCode {
	case http.StatusBadRequest:
		return grpcInternal
	case http.StatusUnauthorized:
		return grpcUnauthenticated
	case http.StatusForbidden:
		return grpcPermissionDenied
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return grpcUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return grpcUnavailable
	}
	return grpcUnknown
}

// keepGRPCStatus turns a gRPC "trailers-only" response into one whose
// status travels in trailers. A trailers-only response is only valid as a
// single HEADERS frame that ends the stream, and a proxy that flushes the
// headers it forwards (as it must, for streaming) splits it: the client
// would then find no status at the end of the stream.
func keepGRPCStatus(resp *http.Response) error {
	if resp.Header.Get("Grpc-Status") == "" || !isGRPCContentType(resp.Header.Get("Content-Type")) {
		return nil
	}
	if resp.Trailer == nil {
		resp.Trailer = http.Header{}
	}
	for _, k := range []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"} {
		if v, ok := resp.Header[k]; ok {
			resp.Trailer[k] = v
			delete(resp.Header, k)
		}
	}
	return nil
}

func writeGRPCError(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", encodeGRPCMessage(msg))
	w.WriteHeader(http.StatusOK)
}

// encodeGRPCMessage percent-encodes what grpc-message may not carry raw.
func encodeGRPCMessage(msg string) string {
	var b strings.Builder
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%")
		b.WriteString(strings.ToUpper(strconv.FormatUint(uint64(c)|0x100, 16)[1:]))
	}
	return b.String()
}

// grpcDeadlinePassed reports whether a gRPC request's grpc-timeout has
// run out since it arrived at start. A gRPC server resets the stream when
// its deadline fires, a moment before the client's own timer: the proxy
// must then say DEADLINE_EXCEEDED rather than report a broken upstream.
func grpcDeadlinePassed(r *http.Request, start time.Time) bool {
	d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	return ok && time.Since(start) >= d
}

// parseGRPCTimeout reads "1-8 digits, then a unit of H, M, S, m, u or n".
func parseGRPCTimeout(s string) (time.Duration, bool) {
	if len(s) < 2 || len(s) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	units := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second,
		'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}
	unit, ok := units[s[len(s)-1]]
	if !ok {
		return 0, false
	}
	return time.Duration(n) * unit, true
}

// encodeGRPCTimeout writes d as grpc-timeout does: at most 8 digits, in
// the finest unit that holds them, rounded down so that a deadline passed
// on never grows. 1n at least: 0 is no timeout on the wire.
func encodeGRPCTimeout(d time.Duration) string {
	d = max(d, time.Nanosecond)
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if n := d / u.unit; n < 1e8 {
			return strconv.FormatInt(int64(n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(min(d/time.Hour, 1e8-1)), 10) + "H"
}

// errGRPCDeadline ends a gRPC call whose deadline passed in the proxy,
// before it was sent; it counts as a cancellation, not as the endpoint's.
var errGRPCDeadline = fmt.Errorf("the call's grpc-timeout passed in the proxy: %w", context.DeadlineExceeded)

// propagateGRPCTimeout passes on what is left of a gRPC call's deadline:
// the grpc-timeout it came with, less the time since it reached the
// proxy (arrived), and no more than the request's own deadline (the
// route's timeout) leaves, so that the server stops when the caller does.
// It returns errGRPCDeadline when nothing is left.
func propagateGRPCTimeout(r *http.Request, arrived time.Time) error {
	d, ok := parseGRPCTimeout(r.Header.Get("Grpc-Timeout"))
	if !ok {
		return nil
	}
	left := d - time.Since(arrived)
	if dl, ok := r.Context().Deadline(); ok {
		left = min(left, time.Until(dl))
	}
	if left <= 0 {
		return errGRPCDeadline
	}
	r.Header.Set("Grpc-Timeout", encodeGRPCTimeout(left))
	return nil
}
