package iptables

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Family is an IP family: its rules go in with its own binaries.
type Family int

const (
	IPv4 Family = iota
	IPv6
)

func (f Family) String() string {
	if f == IPv6 {
		return "IPv6"
	}
	return "IPv4"
}

// restore and save are the binaries that load and dump the family's rules.
func (f Family) restore() string {
	if f == IPv6 {
		return "ip6tables-restore"
	}
	return "iptables-restore"
}

func (f Family) save() string {
	if f == IPv6 {
		return "ip6tables-save"
	}
	return "iptables-save"
}

// The chains weft owns in the nat table. WEFT_INBOUND and WEFT_OUTPUT
// decide what is redirected; the two redirect chains say where, so the
// proxy's ports appear once each.
const (
	ChainInbound         = "WEFT_INBOUND"
	ChainInboundRedirect = "WEFT_IN_REDIRECT"
	ChainOutput          = "WEFT_OUTPUT"
	ChainRedirect        = "WEFT_REDIRECT"
)

var chains = []string{ChainInbound, ChainInboundRedirect, ChainOutput, ChainRedirect}

// jump is a rule in a built-in chain leading to one of weft's.
type jump struct{ from, to string }

// spec is the rule as iptables writes it after -A or -D.
func (j jump) spec() string { return j.from + " -p tcp -j " + j.to }

var jumps = []jump{{"PREROUTING", ChainInbound}, {"OUTPUT", ChainOutput}}

// Config says where the proxy listens and what is left alone.
type Config struct {
	// ProxyUID is the user the proxy runs as: its connections are never
	// redirected, or it would loop into itself.
	ProxyUID uint32
	// InboundPort is the proxy's transparent inbound listener, where
	// connections arriving for the namespace's ports are redirected.
	InboundPort uint16
	// OutboundPort is the proxy's transparent outbound listener, where
	// the connections the app opens are redirected.
	OutboundPort uint16
	// MeshPort is the proxy's inbound port for mesh traffic from other
	// proxies, which arrives there directly and must stay so. AdminPort,
	// when not 0, is its admin port.
	MeshPort  uint16
	AdminPort uint16
	// SkipInboundPorts are destination ports of arriving connections that
	// reach the app directly; SkipOutboundPorts, of connections the app
	// opens that go out directly.
	SkipInboundPorts  []uint16
	SkipOutboundPorts []uint16
}

// ConfigError is a problem with one field of a Config.
type ConfigError struct {
	Field string // the Config field, e.g. "OutboundPort"
	Msg   string
}

func (e *ConfigError) Error() string { return e.Field + ": " + e.Msg }

// Validate checks the ports: the proxy's listeners must be set and apart,
// and nothing may skip them. Every problem is a *ConfigError.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	for _, p := range []struct {
		field string
		port  uint16
	}{{"InboundPort", c.InboundPort}, {"OutboundPort", c.OutboundPort}, {"MeshPort", c.MeshPort}} {
		if p.port == 0 {
			add(p.field, "must be set")
		}
	}
	own := map[uint16]string{}
	for _, p := range []struct {
		field string
		port  uint16
	}{{"InboundPort", c.InboundPort}, {"OutboundPort", c.OutboundPort}, {"MeshPort", c.MeshPort}, {"AdminPort", c.AdminPort}} {
		if p.port == 0 {
			continue
		}
		if other, ok := own[p.port]; ok {
			add(p.field, "port %d is also %s", p.port, other)
			continue
		}
		own[p.port] = p.field
	}
	for _, l := range []struct {
		field string
		ports []uint16
	}{{"SkipInboundPorts", c.SkipInboundPorts}, {"SkipOutboundPorts", c.SkipOutboundPorts}} {
		for _, p := range l.ports {
			switch {
			case p == 0:
				add(l.field, "port 0 is not a port")
			case own[p] == "InboundPort" || own[p] == "OutboundPort":
				// Skipping the proxy's transparent ports would let a
				// connection reach them without a redirect to recover.
				add(l.field, "port %d is the proxy's %s", p, own[p])
			}
		}
	}
	return errors.Join(errs...)
}

// Script is the iptables-restore input (for --noflush) that installs the
// rules in a namespace that has none: the dry run of Install.
func (c *Config) Script(f Family) string {
	return c.script(f, jumps)
}

// script writes the chains, which iptables-restore --noflush creates or,
// when they exist, flushes and fills again, and the jumps to add.
func (c *Config) script(f Family, add []jump) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# weft transparent interception (%s), for %s --noflush\n", f, f.restore())
	b.WriteString("*nat\n")
	for _, ch := range chains {
		fmt.Fprintf(&b, ":%s - [0:0]\n", ch)
	}
	rule := func(format string, args ...any) {
		fmt.Fprintf(&b, format+"\n", args...)
	}
	// Inbound: mesh traffic and admin calls reach the proxy as they are;
	// everything else for the namespace's ports goes to the transparent
	// inbound listener.
	for _, p := range c.inboundExempt() {
		rule("-A %s -p tcp --dport %d -j RETURN", ChainInbound, p)
	}
	rule("-A %s -p tcp -j %s", ChainInbound, ChainInboundRedirect)
	rule("-A %s -p tcp -j REDIRECT --to-ports %d", ChainInboundRedirect, c.InboundPort)
	// Outbound: what never leaves the namespace (loopback, which also
	// carries the namespace's own addresses) and skipped ports go out as
	// they are; the rest is redirected unless the proxy opened it.
	rule("-A %s -o lo -j RETURN", ChainOutput)
	for _, p := range sorted(c.SkipOutboundPorts) {
		rule("-A %s -p tcp --dport %d -j RETURN", ChainOutput, p)
	}
	rule("-A %s -p tcp -m owner ! --uid-owner %d -j %s", ChainOutput, c.ProxyUID, ChainRedirect)
	rule("-A %s -p tcp -j REDIRECT --to-ports %d", ChainRedirect, c.OutboundPort)
	for _, j := range add {
		rule("-A %s", j.spec())
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// inboundExempt are the destination ports arriving connections keep: the
// proxy's mesh and admin ports and the skipped ones, each once, in order.
func (c *Config) inboundExempt() []uint16 {
	ports := []uint16{c.MeshPort}
	if c.AdminPort != 0 {
		ports = append(ports, c.AdminPort)
	}
	for _, p := range sorted(c.SkipInboundPorts) {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

func sorted(ports []uint16) []uint16 {
	out := slices.Clone(ports)
	slices.Sort(out)
	return slices.Compact(out)
}

// installed is what of weft's is in a family's nat table, read from
// iptables-save: the chains and the jump rules, as saved.
type installed struct {
	chains []string
	jumps  map[jump][]string
}

// parseSave reads the nat table of iptables-save's output.
func parseSave(out string) installed {
	in := installed{jumps: map[jump][]string{}}
	table := ""
	for line := range strings.Lines(out) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			continue
		case table != "nat":
			continue
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			if slices.Contains(chains, name) {
				in.chains = append(in.chains, name)
			}
		case strings.HasPrefix(line, "-A "):
			for _, j := range jumps {
				if strings.HasPrefix(line, "-A "+j.from+" ") && strings.HasSuffix(line, " -j "+j.to) {
					in.jumps[j] = append(in.jumps[j], strings.TrimPrefix(line, "-A "))
				}
			}
		}
	}
	return in
}

// missing are the jumps not installed yet.
func (in installed) missing() []jump {
	var out []jump
	for _, j := range jumps {
		if len(in.jumps[j]) == 0 {
			out = append(out, j)
		}
	}
	return out
}

// removal is the iptables-restore input (for --noflush) that takes out
// everything of weft's, or "" when there is nothing.
func (in installed) removal() string {
	if len(in.chains) == 0 && len(in.jumps) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, j := range jumps {
		for _, spec := range in.jumps[j] {
			b.WriteString("-D " + spec + "\n")
		}
	}
	// Declaring a chain flushes it, so no rule of one still jumps to
	// another when they are deleted.
	for _, ch := range in.chains {
		b.WriteString(":" + ch + " - [0:0]\n")
	}
	for _, ch := range in.chains {
		b.WriteString("-X " + ch + "\n")
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

// ParsePorts reads a comma-separated list of ports, as the flags that
// skip ports take them; "" is none.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for f := range strings.SplitSeq(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q: want a port number in 1..65535", f)
		}
		out = append(out, uint16(n))
	}
	return out, nil
}
