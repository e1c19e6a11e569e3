package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/proxy/iptables"
)

// initTimeout bounds the whole of `weft-proxy init`: iptables waits for
// its lock, and a pod must not hang in its init step forever.
const initTimeout = 30 * time.Second

// initConfig is what `weft-proxy init` is asked to do.
type initConfig struct {
	rules    iptables.Config
	families []iptables.Family
	dryRun   bool
	remove   bool
}

// initFlags name the flag of each iptables.Config field, so errors say
// which flag to fix.
var initFlags = map[string]string{
	"InboundPort":       "--inbound-port",
	"OutboundPort":      "--outbound-port",
	"MeshPort":          "--mesh-port",
	"AdminPort":         "--admin-port",
	"SkipInboundPorts":  "--skip-inbound-ports",
	"SkipOutboundPorts": "--skip-outbound-ports",
}

// parseInitFlags reads the command line of `weft-proxy init`. Errors name
// the flag at fault.
func parseInitFlags(args []string, stderr io.Writer) (*initConfig, error) {
	fs := flag.NewFlagSet("weft-proxy init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: weft-proxy init [flags]\n\n"+
			"Installs, in the current network namespace, the iptables rules that send\n"+
			"the workload's inbound and outbound TCP through its proxy (the proxy's\n"+
			"--transparent mode). Run it as root (CAP_NET_ADMIN), before the app starts.\n\nFlags:")
		fs.PrintDefaults()
	}
	var (
		uid                            int64
		inbound, outbound, mesh, admin uint
		skipIn, skipOut                string
		ipv6                           bool
	)
	c := &initConfig{}
	fs.Int64Var(&uid, "proxy-uid", -1, "user ID the proxy runs as: its own connections are never redirected (required)")
	fs.UintVar(&inbound, "inbound-port", 15006, "the proxy's transparent inbound port (weft-proxy --transparent-inbound-port)")
	fs.UintVar(&outbound, "outbound-port", 15001, "the proxy's transparent outbound port (weft-proxy --transparent-outbound-port)")
	fs.UintVar(&mesh, "mesh-port", 0, "the proxy's inbound port for mesh traffic (the Workload's spec.proxy.inboundPort), never redirected (required)")
	fs.UintVar(&admin, "admin-port", 15100, "the proxy's admin port, never redirected; 0 for none")
	fs.StringVar(&skipIn, "skip-inbound-ports", "", "ports, a,b,c, whose arriving connections reach the app directly")
	fs.StringVar(&skipOut, "skip-outbound-ports", "", "ports, a,b,c, the app's connections to which go out directly")
	fs.BoolVar(&ipv6, "ipv6", false, "also install the rules for IPv6 (ip6tables)")
	fs.BoolVar(&c.dryRun, "dry-run", false, "print the iptables-restore input instead of installing it")
	fs.BoolVar(&c.remove, "remove", false, "remove weft's rules instead of installing them")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.families = []iptables.Family{iptables.IPv4}
	if ipv6 {
		c.families = append(c.families, iptables.IPv6)
	}
	if c.remove {
		if c.dryRun {
			return nil, errors.New("--dry-run and --remove: give one or the other")
		}
		return c, nil
	}
	if uid < 0 || uid > math.MaxUint32 {
		if uid == -1 {
			return nil, errors.New("--proxy-uid is required: the user the proxy runs as")
		}
		return nil, fmt.Errorf("--proxy-uid %d: want a user ID", uid)
	}
	c.rules.ProxyUID = uint32(uid)
	for _, p := range []struct {
		flag string
		v    uint
		dst  *uint16
	}{{"--inbound-port", inbound, &c.rules.InboundPort}, {"--outbound-port", outbound, &c.rules.OutboundPort},
		{"--mesh-port", mesh, &c.rules.MeshPort}, {"--admin-port", admin, &c.rules.AdminPort}} {
		if p.v > math.MaxUint16 {
			return nil, fmt.Errorf("%s %d: want a port in 1..65535", p.flag, p.v)
		}
		*p.dst = uint16(p.v)
	}
	var err error
	if c.rules.SkipInboundPorts, err = iptables.ParsePorts(skipIn); err != nil {
		return nil, fmt.Errorf("--skip-inbound-ports: %w", err)
	}
	if c.rules.SkipOutboundPorts, err = iptables.ParsePorts(skipOut); err != nil {
		return nil, fmt.Errorf("--skip-outbound-ports: %w", err)
	}
	if err := c.rules.Validate(); err != nil {
		return nil, initFlagErrors(err)
	}
	return c, nil
}

// initFlagErrors renames the Config fields in err to their flags.
func initFlagErrors(err error) error {
	var errs []error
	for _, e := range model.Unjoin(err) {
		var ce *iptables.ConfigError
		if errors.As(e, &ce) {
			msg := ce.Msg
			for field, flag := range initFlags {
				msg = strings.ReplaceAll(msg, field, flag)
			}
			errs = append(errs, fmt.Errorf("%s: %s", initFlags[ce.Field], msg))
			continue
		}
		errs = append(errs, e)
	}
	return errors.Join(errs...)
}

// runInit is `weft-proxy init`.
func runInit(args []string, stdout, stderr io.Writer) int {
	c, err := parseInitFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy init:", err)
		return 2
	}
	if c.dryRun {
		for _, f := range c.families {
			fmt.Fprint(stdout, c.rules.Script(f))
		}
		return 0
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, initTimeout)
	defer cancel()
	if c.remove {
		if err := iptables.Remove(ctx, c.families...); err != nil {
			logger.Error("removing the interception rules", "error", err)
			return 1
		}
		logger.Info("interception rules removed", "families", fmt.Sprint(c.families))
		return 0
	}
	if err := iptables.Install(ctx, &c.rules, c.families...); err != nil {
		logger.Error("installing the interception rules", "error", err)
		return 1
	}
	logger.Info("interception rules installed", "families", fmt.Sprint(c.families),
		"proxy_uid", c.rules.ProxyUID, "inbound_port", c.rules.InboundPort, "outbound_port", c.rules.OutboundPort,
		"mesh_port", c.rules.MeshPort, "admin_port", c.rules.AdminPort,
		"skip_inbound_ports", fmt.Sprint(c.rules.SkipInboundPorts), "skip_outbound_ports", fmt.Sprint(c.rules.SkipOutboundPorts))
	return 0
}
