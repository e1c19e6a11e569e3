package iptables

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Install puts the rules of c in the current network namespace for each
// family, replacing any weft installed before: running it twice leaves
// one set of rules. Each family's rules go in as one iptables-restore
// transaction.
func Install(ctx context.Context, c *Config, families ...Family) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("iptables: %w", err)
	}
	for _, f := range families {
		in, err := read(ctx, f)
		if err != nil {
			return err
		}
		if err := restore(ctx, f, c.script(f, in.missing())); err != nil {
			return err
		}
	}
	return nil
}

// Remove takes every rule and chain of weft's out of the current network
// namespace for each family; nothing installed is no error.
func Remove(ctx context.Context, families ...Family) error {
	for _, f := range families {
		in, err := read(ctx, f)
		if err != nil {
			return err
		}
		if script := in.removal(); script != "" {
			if err := restore(ctx, f, script); err != nil {
				return err
			}
		}
	}
	return nil
}

// Installed reports whether weft's chains and jumps are all in the
// current network namespace for f.
func Installed(ctx context.Context, f Family) (bool, error) {
	in, err := read(ctx, f)
	if err != nil {
		return false, err
	}
	return len(in.chains) == len(chains) && len(in.missing()) == 0, nil
}

func read(ctx context.Context, f Family) (installed, error) {
	out, err := run(ctx, f.save(), nil, "-t", "nat")
	if err != nil {
		return installed{}, err
	}
	return parseSave(out), nil
}

func restore(ctx context.Context, f Family, script string) error {
	// --wait: another program (kube-proxy on a host, a CNI plugin) may
	// hold the xtables lock for a moment.
	_, err := run(ctx, f.restore(), strings.NewReader(script), "--noflush", "--wait")
	if err != nil {
		return fmt.Errorf("%w\ninput was:\n%s", err, script)
	}
	return nil
}

// run runs an iptables binary; its error carries what the binary said.
func run(ctx context.Context, bin string, stdin *strings.Reader, args ...string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", fmt.Errorf("iptables: %s not found (install Debian's iptables package): %w", bin, err)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("iptables: %s %s: %w: %s", bin, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
