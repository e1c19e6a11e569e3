package inject

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/weftmesh/weft/internal/manifest"
)

// Defaults of Options.
const (
	DefaultProxyUID = 2102
	// DefaultMeshPort is where other proxies reach this one (mTLS): the
	// Workload's inbound port, as internal/manifest reads it from the
	// sidecar's port named weft-inbound (whose default it also is).
	DefaultMeshPort = manifest.DefaultProxyInboundPort
	// DefaultInboundPort and DefaultOutboundPort are the proxy's
	// transparent ports, where the init step's rules redirect arriving
	// and departing connections.
	DefaultInboundPort  = 15006
	DefaultOutboundPort = 15001
	// DefaultAdminPort is weft-proxy's own default admin port.
	DefaultAdminPort     = manifest.DefaultProxyAdminPort
	DefaultTrustDomain   = "weft.local"
	DefaultLogLevel      = "info"
	DefaultTokenAudience = "weft"
	// DefaultTokenExpiration is the projected token's lifetime; the
	// kubelet renews it at 80% of that.
	DefaultTokenExpiration = 3600
)

// Default resources of the proxy. The proxy's idle footprint is small;
// the memory limit leaves room for bursts of connections.
var (
	DefaultProxyCPU         = resource.MustParse("50m")
	DefaultProxyMemory      = resource.MustParse("64Mi")
	DefaultProxyMemoryLimit = resource.MustParse("256Mi")
)

// Options are the mesh-wide settings of injection; a pod's annotations
// tune some of them for that pod.
type Options struct {
	// ProxyImage runs both the sidecar and the init step (its entrypoint
	// is weft-proxy). Required.
	ProxyImage string
	// ImagePullPolicy is the cluster's default when empty.
	ImagePullPolicy string
	// ControlPlane is the host:port proxies dial. Required.
	ControlPlane string
	TrustDomain  string
	// ProxyUID is the proxy's user and group; traffic of this UID is never
	// redirected. An app container must not run as it.
	ProxyUID int64
	// MeshPort takes mesh traffic from other proxies; InboundPort and
	// OutboundPort take the redirected connections; AdminPort serves
	// /ready, /live, /config and /metrics (probes, scrapes).
	MeshPort     int32
	InboundPort  int32
	OutboundPort int32
	AdminPort    int32
	// IPv6 makes the init step install its rules for IPv6 as well: set it
	// on clusters whose pods have IPv6 addresses, or their IPv6 traffic
	// bypasses the proxy.
	IPv6     bool
	LogLevel string
	// ProxyCPU is the CPU request; ProxyMemory the memory request and
	// ProxyMemoryLimit its limit, unless a pod's weft.dev/proxy-memory
	// sets both.
	ProxyCPU         resource.Quantity
	ProxyMemory      resource.Quantity
	ProxyMemoryLimit resource.Quantity
	// TokenAudience is the audience of the projected ServiceAccount token
	// the proxy proves its identity with.
	TokenAudience   string
	TokenExpiration int64
}

// WithDefaults fills in every field left zero but ProxyImage and
// ControlPlane, which have no sensible default.
func (o Options) WithDefaults() Options {
	set := func(p *int32, v int32) {
		if *p == 0 {
			*p = v
		}
	}
	set(&o.MeshPort, DefaultMeshPort)
	set(&o.InboundPort, DefaultInboundPort)
	set(&o.OutboundPort, DefaultOutboundPort)
	set(&o.AdminPort, DefaultAdminPort)
	if o.ProxyUID == 0 {
		o.ProxyUID = DefaultProxyUID
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	if o.LogLevel == "" {
		o.LogLevel = DefaultLogLevel
	}
	if o.ProxyCPU.IsZero() {
		o.ProxyCPU = DefaultProxyCPU.DeepCopy()
	}
	if o.ProxyMemory.IsZero() {
		o.ProxyMemory = DefaultProxyMemory.DeepCopy()
	}
	if o.ProxyMemoryLimit.IsZero() {
		o.ProxyMemoryLimit = DefaultProxyMemoryLimit.DeepCopy()
	}
	if o.TokenAudience == "" {
		o.TokenAudience = DefaultTokenAudience
	}
	if o.TokenExpiration == 0 {
		o.TokenExpiration = DefaultTokenExpiration
	}
	return o
}

// Validate checks options after WithDefaults; errors name the field.
func (o Options) Validate() error {
	var errs []error
	if o.ProxyImage == "" || strings.ContainsAny(o.ProxyImage, " \t\n") {
		errs = append(errs, fmt.Errorf("proxy image %q: want an image reference", o.ProxyImage))
	}
	if host, port, err := net.SplitHostPort(o.ControlPlane); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("control plane %q: want host:port", o.ControlPlane))
	}
	if o.TrustDomain == "" || strings.ContainsAny(o.TrustDomain, "/: \t\n") {
		errs = append(errs, fmt.Errorf("trust domain %q: want a name such as weft.local", o.TrustDomain))
	}
	// Root (0) would exempt every root process of the app from the mesh.
	if o.ProxyUID < 1 || o.ProxyUID > 1<<31-1 {
		errs = append(errs, fmt.Errorf("proxy UID %d: want 1 to %d", o.ProxyUID, 1<<31-1))
	}
	ports := map[int32]string{}
	for _, p := range []struct {
		name string
		v    int32
	}{{"mesh port", o.MeshPort}, {"inbound port", o.InboundPort}, {"outbound port", o.OutboundPort}, {"admin port", o.AdminPort}} {
		if p.v < 1 || p.v > 65535 {
			errs = append(errs, fmt.Errorf("%s %d: want 1 to 65535", p.name, p.v))
		} else if other, clash := ports[p.v]; clash {
			errs = append(errs, fmt.Errorf("%s %d is also the %s", p.name, p.v, other))
		}
		ports[p.v] = p.name
	}
	if !slices.Contains(LogLevels, o.LogLevel) {
		errs = append(errs, fmt.Errorf("log level %q: want one of %s", o.LogLevel, strings.Join(LogLevels, ", ")))
	}
	switch o.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, fmt.Errorf("image pull policy %q: want Always, IfNotPresent or Never", o.ImagePullPolicy))
	}
	if o.ProxyMemoryLimit.Cmp(o.ProxyMemory) < 0 {
		errs = append(errs, fmt.Errorf("proxy memory limit %s is below its request %s", o.ProxyMemoryLimit.String(), o.ProxyMemory.String()))
	}
	if o.TokenAudience == "" {
		errs = append(errs, errors.New("token audience must not be empty"))
	}
	// The kubelet refuses projected tokens valid for less than 10 minutes.
	if o.TokenExpiration < 600 {
		errs = append(errs, fmt.Errorf("token expiration %ds: want at least 600", o.TokenExpiration))
	}
	return errors.Join(errs...)
}
