package up

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Tracing is where the proxies weft up starts send their spans. The
// zero value is tracing off: the proxies then pass trace headers through
// untouched and record nothing.
type Tracing struct {
	// Collector is the OpenTelemetry collector: host:port for the grpc
	// protocol, an http:// or https:// URL for http (a URL without a path
	// means /v1/traces). Empty means no tracing.
	Collector string
	// Protocol is the OTLP transport, "grpc" or "http" (protobuf over
	// HTTP); empty means grpc.
	Protocol string
	// SampleRatio is the share, 0 to 1, of the traces a proxy starts
	// that are recorded. It is passed as given, so 0 records only traces
	// a caller already sampled; the CLI's default is 1.
	SampleRatio float64
}

// Enabled says whether the proxies trace at all.
func (t Tracing) Enabled() bool { return t.Collector != "" }

// Validate checks t before any process starts, so that a mistake is one
// clear error naming the weft up flag at fault rather than every proxy
// failing to start, restarting, and logging it to its own file.
func (t Tracing) Validate() error {
	switch t.Protocol {
	case "", "grpc", "http":
	default:
		return fmt.Errorf("--trace-protocol %q: want grpc or http", t.Protocol)
	}
	if math.IsNaN(t.SampleRatio) || t.SampleRatio < 0 || t.SampleRatio > 1 {
		return fmt.Errorf("--trace-sample-ratio %v: want 0 to 1", t.SampleRatio)
	}
	if t.Collector == "" {
		return nil
	}
	if t.Protocol == "http" {
		u, err := url.Parse(t.Collector)
		if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("--trace-collector %q: with --trace-protocol http, want a URL such as http://127.0.0.1:4318", t.Collector)
		}
		return nil
	}
	if strings.Contains(t.Collector, "://") {
		return fmt.Errorf("--trace-collector %q: with --trace-protocol grpc, want host:port such as 127.0.0.1:4317 (URLs are for --trace-protocol http)", t.Collector)
	}
	host, port, err := net.SplitHostPort(t.Collector)
	if err == nil && host == "" {
		err = errors.New("no host")
	}
	if err == nil {
		if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
			err = fmt.Errorf("port %q is not 1..65535", port)
		}
	}
	if err != nil {
		return fmt.Errorf("--trace-collector %q: want host:port such as 127.0.0.1:4317: %w", t.Collector, err)
	}
	return nil
}

// proxyArgs are the weft-proxy flags that make a proxy trace as t says;
// none when tracing is off.
func (t Tracing) proxyArgs() []string {
	if !t.Enabled() {
		return nil
	}
	protocol := t.Protocol
	if protocol == "" {
		protocol = "grpc"
	}
	return []string{"--trace-collector", t.Collector, "--trace-protocol", protocol,
		"--trace-sample-ratio", strconv.FormatFloat(t.SampleRatio, 'g', -1, 64)}
}

// String describes t for weft up's summary.
func (t Tracing) String() string {
	if !t.Enabled() {
		return "off"
	}
	protocol := t.Protocol
	if protocol == "" {
		protocol = "grpc"
	}
	return fmt.Sprintf("OTLP/%s %s, sample ratio %v", protocol, t.Collector, t.SampleRatio)
}
