package meshheader

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Header names, in canonical form. Every header that starts with Prefix
// belongs to the mesh: the inbound proxy strips them all before the app
// sees a request, and the outbound proxy strips any the app sent so an app
// cannot steer the peer proxy.
const (
	Prefix = "Weft-"
	// TargetPort names the workload port the request is for, in decimal.
	TargetPort = "Weft-Target-Port"
	// Proto names the protocol the original client spoke to its outbound
	// proxy; the inbound speaks it to the app when the port declares none.
	Proto = "Weft-Proto"
	// Tap asks the inbound proxy for its live stream of request metadata
	// (internal/proxy/tap) instead of a request to the app. Its presence
	// alone, whatever its value, makes a request a tap request, so a tap
	// request is never forwarded to the app; only the control plane's
	// identity is answered. TapValue is what the control plane sends.
	Tap      = "Weft-Tap"
	TapValue = "1"
)

// Proto values.
const (
	ProtoHTTP1 = "http/1.1"
	ProtoHTTP2 = "h2"
)

// ErrMissing is returned when a required mesh header is absent.
var ErrMissing = errors.New("missing")

// ParseTargetPort reads the TargetPort header: exactly one value, a
// decimal port in 1..65535 written without sign, spaces or leading zeros.
// The strictness is deliberate: the value decides which local socket the
// inbound proxy connects to.
func ParseTargetPort(h http.Header) (uint32, error) {
	vals := h.Values(TargetPort)
	switch len(vals) {
	case 0:
		return 0, fmt.Errorf("header %s: %w", TargetPort, ErrMissing)
	case 1:
	default:
		return 0, fmt.Errorf("header %s: %d values, want one", TargetPort, len(vals))
	}
	port, err := parsePort(vals[0])
	if err != nil {
		return 0, fmt.Errorf("header %s: %w", TargetPort, err)
	}
	return port, nil
}

func parsePort(s string) (uint32, error) {
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if s[0] == '0' {
		return 0, fmt.Errorf("%q is not a port number (no leading zeros, not 0)", s)
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
		n = n*10 + uint32(c-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("%q is out of range 1..65535", s)
	}
	return n, nil
}

// ParseProto reads the Proto header. A missing header is ErrMissing: the
// caller decides the default.
func ParseProto(h http.Header) (string, error) {
	vals := h.Values(Proto)
	switch len(vals) {
	case 0:
		return "", fmt.Errorf("header %s: %w", Proto, ErrMissing)
	case 1:
	default:
		return "", fmt.Errorf("header %s: %d values, want one", Proto, len(vals))
	}
	switch v := vals[0]; v {
	case ProtoHTTP1, ProtoHTTP2:
		return v, nil
	default:
		return "", fmt.Errorf("header %s: %q is not %q or %q", Proto, v, ProtoHTTP1, ProtoHTTP2)
	}
}

// IsTap reports whether a request asks for the tap stream: it carries the
// Tap header, with any value.
func IsTap(h http.Header) bool { return len(h.Values(Tap)) > 0 }

// ProtoOf names the protocol a server-side request arrived with.
func ProtoOf(r *http.Request) string {
	if r.ProtoMajor == 2 {
		return ProtoHTTP2
	}
	return ProtoHTTP1
}

// Strip removes every mesh header, whatever its case. Header keys from
// net/http are canonical, but a caller may have built h by hand.
func Strip(h http.Header) {
	for k := range h {
		if len(k) >= len(Prefix) && strings.EqualFold(k[:len(Prefix)], Prefix) {
			delete(h, k)
		}
	}
}
