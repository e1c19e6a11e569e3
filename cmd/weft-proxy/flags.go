package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/weftmesh/weft/internal/appprobe"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy"
)

// config is what the command line asks for.
type config struct {
	controlPlane string
	workload     model.Ref
	admin        string
	// appProbes are the app's HTTP and TCP probes the injector moved
	// onto the admin port.
	appProbes       appprobe.Set
	appProbeAddress string
	appAddress      string
	drainTimeout    time.Duration
	detectTimeout   time.Duration
	logLevel        string
	logFormat       string
	// balancer picks endpoints for the Services that name no balancer.
	balancer    string
	trustDomain string
	// traceCollector, when set, is the OTLP collector spans go to, by
	// traceProtocol; traceRatio is the share of new traces sampled.
	traceCollector string
	traceProtocol  string
	traceRatio     float64
	// tokenFile holds the join token, or a Kubernetes service account
	// token; "" means $WEFT_JOIN_TOKEN.
	tokenFile string
	// caFile holds the control plane's CA roots, which a service account
	// token (unlike a join token) does not pin.
	caFile string
	// register: the proxy declares its own workload (built from the
	// flags) and holds it with a lease.
	register   bool
	registered *model.Workload
	leaseTTL   time.Duration
	// transparent, when set, takes the connections `weft-proxy init`'s
	// rules redirect, on these ports.
	transparent *proxy.Transparent
}

// parseFlags reads the command line. Errors name the flag at fault.
func parseFlags(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("weft-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{}
	var (
		workload, name, namespace, labels, sa, address string
		inboundPort                                    uint
		ports, outbound                                []string
	)
	fs.StringVar(&c.controlPlane, "control-plane", "", "control plane address, host:port (required)")
	fs.StringVar(&workload, "workload", "", "this proxy's workload, namespace/name (required unless --register)")
	fs.StringVar(&c.admin, "admin", "127.0.0.1:15100", "admin API address: /live, /ready, /config")
	fs.StringVar(&c.appAddress, "app-address", "127.0.0.1", "address the app listens on")
	fs.StringVar(&c.appProbeAddress, "app-probe-address", "", "address the app's probes go to, as the kubelet sends them: the pod's IP (default: --app-address)")
	fs.Func("app-probes", "the app's HTTP and TCP probes, moved onto the admin port by the injector (JSON: container/kind -> port, path, scheme, headers, timeoutSeconds); each is answered at /app-health/CONTAINER/KIND", func(s string) error {
		set, err := appprobe.Parse(s)
		if err != nil {
			return err
		}
		c.appProbes = set
		return nil
	})
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 10*time.Second, "how long shutdown waits for requests and tunnels in flight")
	fs.DurationVar(&c.detectTimeout, "detect-timeout", 100*time.Millisecond, "how long a silent outbound connection waits before it is treated as opaque TCP")
	fs.StringVar(&c.balancer, "balancer", "p2c", "load balancer of the Services that name none (annotation weft.dev/load-balancer): "+strings.Join(model.LoadBalancers, " or "))
	fs.StringVar(&c.traceCollector, "trace-collector", "", "OTLP collector for the proxy's spans: host:port for grpc, a URL for http (default: no tracing; trace headers pass through)")
	fs.StringVar(&c.traceProtocol, "trace-protocol", "grpc", "OTLP transport to the collector: grpc or http")
	fs.Float64Var(&c.traceRatio, "trace-sample-ratio", 1, "share of new traces recorded, 0 to 1; traces joined from a request keep the caller's decision")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&c.logFormat, "log-format", "json", "json or text")
	fs.StringVar(&c.trustDomain, "trust-domain", "weft.local", "trust domain of the mesh's SPIFFE IDs")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the join token, or a Kubernetes service account token for audience weft (default: the WEFT_JOIN_TOKEN environment variable)")
	fs.StringVar(&c.caFile, "ca-file", "", "with a service account token: PEM file of the control plane's CA roots")
	fs.BoolVar(&c.register, "register", false, "register this workload with the control plane, built from the flags below")
	fs.StringVar(&name, "name", "", "with --register: workload name")
	fs.StringVar(&namespace, "namespace", "default", "with --register: workload namespace")
	fs.StringVar(&labels, "labels", "", "with --register: labels, k=v,k=v")
	fs.StringVar(&sa, "service-account", "", "with --register: service account (default \"default\")")
	fs.StringVar(&address, "address", "127.0.0.1", "with --register: IP other proxies reach this one at")
	fs.UintVar(&inboundPort, "inbound-port", 0, "with --register: port for mesh traffic from other proxies")
	fs.Func("port", "with --register: an app port, [name=]port[/protocol]; repeat or separate with commas", func(s string) error {
		ports = append(ports, splitList(s)...)
		return nil
	})
	fs.Func("outbound", "with --register: a service to call, [namespace/]service:port=localport; repeat or separate with commas", func(s string) error {
		outbound = append(outbound, splitList(s)...)
		return nil
	})
	fs.DurationVar(&c.leaseTTL, "lease-ttl", 15*time.Second, "with --register: registration lease length")
	var transparent bool
	var trOut, trIn uint
	fs.BoolVar(&transparent, "transparent", false, "take the connections `weft-proxy init`'s iptables rules redirect: the app's to services' cluster IPs go through the mesh, others pass through; plaintext clients' to the workload's ports are served as permissive mode allows. Run as the user init was given (--proxy-uid)")
	fs.UintVar(&trOut, "transparent-outbound-port", 15001, "with --transparent: port the app's redirected connections arrive on (init --outbound-port)")
	fs.UintVar(&trIn, "transparent-inbound-port", 15006, "with --transparent: port redirected connections from outside arrive on (init --inbound-port)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.controlPlane == "" {
		return nil, errors.New("--control-plane is required")
	}
	if c.appProbeAddress == "" {
		c.appProbeAddress = c.appAddress
	} else if net.ParseIP(c.appProbeAddress) == nil {
		return nil, fmt.Errorf("--app-probe-address %q: want an IP address", c.appProbeAddress)
	}
	if _, _, err := net.SplitHostPort(c.admin); err != nil {
		return nil, fmt.Errorf("--admin %q: %w", c.admin, err)
	}
	if !slices.Contains(model.LoadBalancers, c.balancer) {
		return nil, fmt.Errorf("--balancer %q: want one of %s", c.balancer, strings.Join(model.LoadBalancers, ", "))
	}
	if c.traceProtocol != "grpc" && c.traceProtocol != "http" {
		return nil, fmt.Errorf("--trace-protocol %q: want grpc or http", c.traceProtocol)
	}
	if c.traceRatio < 0 || c.traceRatio > 1 || math.IsNaN(c.traceRatio) {
		return nil, fmt.Errorf("--trace-sample-ratio %v: want 0 to 1", c.traceRatio)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		return nil, fmt.Errorf("--log-format %q: want json or text", c.logFormat)
	}
	if _, err := spiffeid.TrustDomainFromString(c.trustDomain); err != nil {
		return nil, fmt.Errorf("--trust-domain %q: %w", c.trustDomain, err)
	}
	if transparent {
		tr, err := transparentPorts(trOut, trIn, c.admin)
		if err != nil {
			return nil, err
		}
		c.transparent = tr
	}
	if !c.register {
		ref, err := model.ParseRef(workload, "")
		if err != nil {
			return nil, fmt.Errorf("--workload: %w (want namespace/name)", err)
		}
		c.workload = ref
		return c, nil
	}

	w := &model.Workload{
		Ref:            model.Ref{Namespace: namespace, Name: name},
		ServiceAccount: sa,
		Address:        address,
		InboundPort:    uint32(min(inboundPort, 1<<32-1)),
	}
	if _, port, err := net.SplitHostPort(c.admin); err == nil {
		if n, err := strconv.ParseUint(port, 10, 32); err == nil {
			w.AdminPort = uint32(n)
		}
	}
	var err error
	if w.Labels, err = parseLabels(labels); err != nil {
		return nil, fmt.Errorf("--labels: %w", err)
	}
	for _, s := range ports {
		p, err := parsePort(s)
		if err != nil {
			return nil, fmt.Errorf("--port %q: %w", s, err)
		}
		w.Ports = append(w.Ports, p)
	}
	for _, s := range outbound {
		o, err := parseOutbound(s, namespace)
		if err != nil {
			return nil, fmt.Errorf("--outbound %q: %w", s, err)
		}
		w.Outbound = append(w.Outbound, o)
	}
	if err := w.Validate(); err != nil {
		return nil, flagErrors(err)
	}
	if workload != "" && workload != w.Ref.String() {
		return nil, fmt.Errorf("--workload %q disagrees with --namespace/--name %s; give one or the other", workload, w.Ref)
	}
	c.workload, c.registered = w.Ref, w
	return c, nil
}

// transparentPorts checks the transparent listeners' ports: real ports,
// apart from each other and from the admin port.
func transparentPorts(out, in uint, admin string) (*proxy.Transparent, error) {
	for _, p := range []struct {
		flag string
		v    uint
	}{{"--transparent-outbound-port", out}, {"--transparent-inbound-port", in}} {
		if p.v == 0 || p.v > 65535 {
			return nil, fmt.Errorf("%s %d: want a port in 1..65535", p.flag, p.v)
		}
	}
	if out == in {
		return nil, fmt.Errorf("--transparent-inbound-port %d: the same as --transparent-outbound-port", in)
	}
	if _, port, err := net.SplitHostPort(admin); err == nil {
		for _, p := range []struct {
			flag string
			v    uint
		}{{"--transparent-outbound-port", out}, {"--transparent-inbound-port", in}} {
			if strconv.FormatUint(uint64(p.v), 10) == port {
				return nil, fmt.Errorf("%s %d: the same as the --admin port", p.flag, p.v)
			}
		}
	}
	return &proxy.Transparent{OutboundPort: uint32(out), InboundPort: uint32(in)}, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func parseLabels(s string) (map[string]string, error) {
	labels := map[string]string{}
	for _, kv := range splitList(s) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		labels[k] = v
	}
	return labels, nil
}

// parsePort reads "[name=]port[/protocol]", e.g. "http=8080/http".
func parsePort(s string) (model.WorkloadPort, error) {
	var p model.WorkloadPort
	rest := s
	if name, after, ok := strings.Cut(rest, "="); ok {
		p.Name, rest = name, after
	}
	num, proto, _ := strings.Cut(rest, "/")
	n, err := strconv.ParseUint(num, 10, 16)
	if err != nil || n == 0 {
		return p, fmt.Errorf("port %q: want a number in 1..65535", num)
	}
	p.Port = uint32(n)
	if p.Protocol, err = model.ParseProtocol(proto); err != nil {
		return p, err
	}
	return p, nil
}

// parseOutbound reads "[namespace/]service:port=localport".
func parseOutbound(s, defaultNamespace string) (model.Outbound, error) {
	var o model.Outbound
	target, local, ok := strings.Cut(s, "=")
	if !ok {
		return o, errors.New("want [namespace/]service:port=localport")
	}
	svc, port, ok := strings.Cut(target, ":")
	if !ok {
		return o, errors.New("want [namespace/]service:port=localport")
	}
	ref, err := model.ParseRef(svc, defaultNamespace)
	if err != nil {
		return o, fmt.Errorf("service %w", err)
	}
	o.Service = ref
	for _, f := range []struct {
		s   string
		dst *uint32
		of  string
	}{{port, &o.Port, "service port"}, {local, &o.LocalPort, "local port"}} {
		n, err := strconv.ParseUint(f.s, 10, 16)
		if err != nil || n == 0 {
			return o, fmt.Errorf("%s %q: want a number in 1..65535", f.of, f.s)
		}
		*f.dst = uint32(n)
	}
	return o, nil
}

// flagErrors renames a workload's manifest fields to the flags that set
// them, so the user sees which flag to fix.
func flagErrors(err error) error {
	names := []struct{ field, flag string }{
		{"metadata.labels", "--labels"},
		{"metadata", "--namespace/--name"},
		{"spec.serviceAccount", "--service-account"},
		{"spec.address", "--address"},
		{"spec.proxy.inboundPort", "--inbound-port"},
		{"spec.ports", "--port"},
		{"spec.outbound", "--outbound"},
	}
	var errs []error
	for _, e := range model.Unjoin(err) {
		var fe *model.FieldError
		if !errors.As(e, &fe) {
			errs = append(errs, e)
			continue
		}
		field := fe.Field
		for _, n := range names {
			if strings.HasPrefix(field, n.field) {
				field = n.flag + " (" + fe.Field + ")"
				break
			}
		}
		errs = append(errs, fmt.Errorf("%s: %s", field, fe.Msg))
	}
	return errors.Join(errs...)
}
