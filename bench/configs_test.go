package main

import (
	"context"
	"os/exec"
	"testing"
	"time"
)

// Every peer configuration, rendered as a run renders it, passes its own
// program's check.
func TestPeerConfigsPassTheirChecks(t *testing.T) {
	dir := t.TempDir()
	c, err := makeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{certs: c, backend: &backend{HTTP: 1, GRPC: 2, GRPCStream: 4, TCP: 3}}
	p, err := newPeerPorts(e, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tmpl  string
		tool  string
		check func(bin, conf string) []string
	}{
		{"nginx/client.conf.tmpl", "nginx", func(_, conf string) []string { return []string{"-t", "-p", dir, "-c", conf} }},
		{"nginx/server.conf.tmpl", "nginx", func(_, conf string) []string { return []string{"-t", "-p", dir, "-c", conf} }},
		{"haproxy/client.cfg.tmpl", "haproxy", func(_, conf string) []string { return []string{"-c", "-f", conf} }},
		{"haproxy/server.cfg.tmpl", "haproxy", func(_, conf string) []string { return []string{"-c", "-f", conf} }},
		{"caddy/client.Caddyfile.tmpl", "caddy", func(_, conf string) []string { return []string{"validate", "--config", conf, "--adapter", "caddyfile"} }},
		{"caddy/server.Caddyfile.tmpl", "caddy", func(_, conf string) []string { return []string{"validate", "--config", conf, "--adapter", "caddyfile"} }},
	} {
		t.Run(tc.tmpl, func(t *testing.T) {
			bin := tool(t, tc.tool)
			conf, err := render(tc.tmpl, dir, p)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tc.check(bin, conf)...)
			cmd.Env = append(cmd.Environ(), "XDG_DATA_HOME="+dir, "XDG_CONFIG_HOME="+dir, "HOME="+dir)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%s rejects %s: %v\n%s", tc.tool, conf, err, out)
			}
		})
	}
}

func TestRenderRefusesAMissingField(t *testing.T) {
	if _, err := render("nginx/client.conf.tmpl", t.TempDir(), map[string]any{"Dir": "/x"}); err == nil {
		t.Fatal("rendering with no ports and no certificates succeeded")
	}
}
