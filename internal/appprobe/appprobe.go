package appprobe

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Kinds are the kubelet's probes, as they appear in Path.
var Kinds = []string{"liveness", "readiness", "startup"}

// PathPrefix starts the admin path of every app probe.
const PathPrefix = "/app-health/"

// Path is where on the proxy's admin port a container's probe of a kind
// is answered.
func Path(container, kind string) string { return PathPrefix + container + "/" + kind }

// Key names a probe in a Set: "container/kind".
func Key(container, kind string) string { return container + "/" + kind }

// Probe is the HTTP GET the kubelet would have sent to the app.
type Probe struct {
	Port int32 `json:"port"`
	// Path is the request's path and query, as the probe gives it.
	Path string `json:"path,omitempty"`
	// Scheme is HTTP or HTTPS for an HTTP probe (HTTPS is not verified, as
	// the kubelet does not verify it either), or TCP for a TCP probe: a
	// connection the app accepts passes.
	Scheme  string   `json:"scheme,omitempty"`
	Headers []Header `json:"headers,omitempty"`
	// TimeoutSeconds bounds the request; 0 is the kubelet's default, 1.
	TimeoutSeconds int32 `json:"timeoutSeconds,omitempty"`
}

// Header is one of a probe's headers; a Host header sets the request's
// host.
type Header struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Set holds a pod's rewritten probes by Key.
type Set map[string]Probe

// Encode is the Set as Parse reads it.
func (s Set) Encode() string {
	b, err := json.Marshal(s)
	if err != nil {
		// A Set of strings and numbers always encodes.
		panic(fmt.Sprintf("appprobe: encode: %v", err))
	}
	return string(b)
}

// dnsLabel is a Kubernetes container name.
var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// Parse reads a Set that Encode wrote, and checks every probe: each error
// names the probe's key and field.
func Parse(s string) (Set, error) {
	var set Set
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&set); err != nil {
		return nil, fmt.Errorf("app probes: %w", err)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var errs []error
	for _, k := range keys {
		if err := check(k, set[k]); err != nil {
			errs = append(errs, fmt.Errorf("app probe %q: %w", k, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

func check(key string, p Probe) error {
	container, kind, ok := strings.Cut(key, "/")
	switch {
	case !ok || !dnsLabel.MatchString(container) || len(container) > 63:
		return fmt.Errorf("key: want container/kind, the container a DNS label")
	case !slices.Contains(Kinds, kind):
		return fmt.Errorf("key: kind %q: want one of %s", kind, strings.Join(Kinds, ", "))
	case p.Port < 1 || p.Port > 65535:
		return fmt.Errorf("port: %d: want 1 to 65535", p.Port)
	case p.Path != "" && !strings.HasPrefix(p.Path, "/"):
		return fmt.Errorf("path: %q: want it to start with /", p.Path)
	case p.Scheme != "" && p.Scheme != "HTTP" && p.Scheme != "HTTPS" && p.Scheme != "TCP":
		return fmt.Errorf("scheme: %q: want HTTP, HTTPS or TCP", p.Scheme)
	case p.TimeoutSeconds < 0:
		return fmt.Errorf("timeoutSeconds: %d: want 0 or more", p.TimeoutSeconds)
	}
	for i, h := range p.Headers {
		if h.Name == "" || strings.ContainsAny(h.Name, " \t\r\n:") || strings.ContainsAny(h.Value, "\r\n") {
			return fmt.Errorf("headers[%d]: %q: not a valid header", i, h.Name)
		}
	}
	return nil
}
