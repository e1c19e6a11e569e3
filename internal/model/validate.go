package model

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// FieldError is a problem with one field of an object.
type FieldError struct {
	// Field is the path in the object as users write it, e.g.
	// "spec.ports[1].port".
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// FieldErrors collects the problems of one object.
type FieldErrors []*FieldError

// Add records a problem with a field.
func (fe *FieldErrors) Add(field, format string, args ...any) {
	*fe = append(*fe, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Err returns nil when there are no problems.
func (fe FieldErrors) Err() error {
	if len(fe) == 0 {
		return nil
	}
	errs := make([]error, len(fe))
	for i, e := range fe {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// ValidateDNSLabel checks an RFC 1123 label, as Kubernetes names are.
func ValidateDNSLabel(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	if len(s) > 63 || !dnsLabel.MatchString(s) {
		return fmt.Errorf("%q is not a DNS label (lower-case letters, digits and '-', at most 63)", s)
	}
	return nil
}

var labelKey = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$`)
var labelValue = regexp.MustCompile(`^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$`)

func validateLabels(fe *FieldErrors, field string, labels map[string]string) {
	for k, v := range labels {
		if len(k) > 316 || !labelKey.MatchString(k) {
			fe.Add(field, "invalid label key %q", k)
		}
		if len(v) > 63 || !labelValue.MatchString(v) {
			fe.Add(field+"."+k, "invalid label value %q", v)
		}
	}
}

func validatePort(fe *FieldErrors, field string, port uint32) {
	if port == 0 || port > 65535 {
		fe.Add(field, "must be between 1 and 65535, got %d", port)
	}
}

// Validate checks a service; field names are those of a v1 Service manifest.
func (s *Service) Validate() error {
	var fe FieldErrors
	if err := ValidateRef(s.Ref); err != nil {
		fe.Add("metadata", "%v", err)
	}
	validateLabels(&fe, "metadata.labels", s.Labels)
	validateLabels(&fe, "spec.selector", s.Selector)
	switch s.MTLSMode {
	case MTLSUnset, MTLSStrict, MTLSPermissive:
	default:
		fe.Add("metadata.annotations["+MTLSModeAnnotation+"]", "%q: want strict or permissive", s.MTLSMode)
	}
	if s.LoadBalancer != "" && !slices.Contains(LoadBalancers, s.LoadBalancer) {
		fe.Add("metadata.annotations["+LoadBalancerAnnotation+"]", "%q: want one of %s", s.LoadBalancer, strings.Join(LoadBalancers, ", "))
	}
	ValidateClusterIPs(&fe, "spec.clusterIPs", s.ClusterIPs)
	if len(s.Ports) == 0 {
		fe.Add("spec.ports", "must have at least one port")
	}
	seen := map[uint32]bool{}
	names := map[string]bool{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		validatePort(&fe, f+".port", p.Port)
		if seen[p.Port] {
			fe.Add(f+".port", "duplicate port %d", p.Port)
		}
		seen[p.Port] = true
		if len(s.Ports) > 1 && p.Name == "" {
			fe.Add(f+".name", "must be set when a service has more than one port")
		}
		if p.Name != "" {
			if err := ValidateDNSLabel(p.Name); err != nil {
				fe.Add(f+".name", "%v", err)
			}
			if names[p.Name] {
				fe.Add(f+".name", "duplicate name %q", p.Name)
			}
			names[p.Name] = true
		}
		if p.TargetPort > 65535 {
			fe.Add(f+".targetPort", "must be between 1 and 65535, got %d", p.TargetPort)
		}
	}
	return fe.Err()
}

// ValidateClusterIPs checks a service's cluster IPs, the list at field:
// each in canonical form, since proxies match them against the address a
// connection was opened to, and at most one per IP family, as Kubernetes
// allows. The wire checks them with it too.
func ValidateClusterIPs(fe *FieldErrors, field string, ips []string) {
	var families [2]bool
	for i, s := range ips {
		f := fmt.Sprintf("%s[%d]", field, i)
		a, err := netip.ParseAddr(s)
		switch {
		case err != nil || a.Zone() != "":
			fe.Add(f, "must be an IP address, got %q", s)
			continue
		case a.Is4In6():
			fe.Add(f, "%q: write an IPv4 address as such, not mapped into IPv6", s)
			continue
		case a.String() != s:
			fe.Add(f, "%q: write the address in canonical form, %s", s, a)
			continue
		case a.IsUnspecified() || a.IsMulticast():
			fe.Add(f, "%q: not an address a service can answer on", s)
			continue
		}
		fam := 0
		if a.Is6() {
			fam = 1
		}
		if families[fam] {
			fe.Add(f, "%q: at most one cluster IP per IP family", s)
		}
		families[fam] = true
	}
}

// Validate checks a workload; field names are those of a Workload manifest.
func (w *Workload) Validate() error {
	var fe FieldErrors
	if err := ValidateRef(w.Ref); err != nil {
		fe.Add("metadata", "%v", err)
	}
	validateLabels(&fe, "metadata.labels", w.Labels)
	if w.ServiceAccount != "" {
		if err := ValidateDNSLabel(w.ServiceAccount); err != nil {
			fe.Add("spec.serviceAccount", "%v", err)
		}
	}
	if _, err := netip.ParseAddr(w.Address); err != nil {
		fe.Add("spec.address", "must be an IP address, got %q", w.Address)
	}
	validatePort(&fe, "spec.proxy.inboundPort", w.InboundPort)
	seen := map[uint32]bool{}
	for i, p := range w.Ports {
		f := fmt.Sprintf("spec.ports[%d]", i)
		validatePort(&fe, f+".port", p.Port)
		if seen[p.Port] {
			fe.Add(f+".port", "duplicate port %d", p.Port)
		}
		seen[p.Port] = true
		if p.Name != "" {
			if err := ValidateDNSLabel(p.Name); err != nil {
				fe.Add(f+".name", "%v", err)
			}
		}
	}
	// The proxy's own ports are never app ports: the inbound relays only
	// to app ports, and must never relay to the proxy itself.
	own := map[uint32]string{w.InboundPort: "the proxy's inbound port"}
	if w.AdminPort != 0 {
		own[w.AdminPort] = "the proxy's admin port"
	}
	for _, o := range w.Outbound {
		own[o.LocalPort] = fmt.Sprintf("the local port of outbound %s", o.Service)
	}
	for i, p := range w.Ports {
		if what, clash := own[p.Port]; clash {
			fe.Add(fmt.Sprintf("spec.ports[%d].port", i), "%d is %s", p.Port, what)
		}
	}
	if w.AdminPort != 0 && w.AdminPort == w.InboundPort {
		fe.Add("spec.proxy.adminPort", "is the proxy's inbound port %d", w.AdminPort)
	}
	local := map[uint32]bool{}
	for i, o := range w.Outbound {
		f := fmt.Sprintf("spec.outbound[%d]", i)
		if err := ValidateRef(o.Service); err != nil {
			fe.Add(f+".service", "%v", err)
		}
		validatePort(&fe, f+".port", o.Port)
		validatePort(&fe, f+".localPort", o.LocalPort)
		if local[o.LocalPort] {
			fe.Add(f+".localPort", "duplicate local port %d", o.LocalPort)
		}
		local[o.LocalPort] = true
		if o.LocalPort == w.InboundPort {
			fe.Add(f+".localPort", "is the proxy's inbound port %d", o.LocalPort)
		}
	}
	return fe.Err()
}

// ObjectError is a problem with one object from one place.
type ObjectError struct {
	Kind string
	Ref  Ref
	// Source is where the object came from: a file path, or "registration".
	Source string
	Err    error
}

func (e *ObjectError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	b.WriteString(strings.ToLower(e.Kind))
	if e.Ref.Name != "" {
		b.WriteString(" ")
		b.WriteString(e.Ref.String())
	}
	b.WriteString(": ")
	b.WriteString(strings.ReplaceAll(e.Err.Error(), "\n", "; "))
	return b.String()
}

func (e *ObjectError) Unwrap() error { return e.Err }

// Unjoin splits an error made by errors.Join (as a validation's Err) into
// the errors it joins; any other error is a list of one.
func Unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
