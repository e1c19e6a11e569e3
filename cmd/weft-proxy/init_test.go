package main

import (
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/proxy/iptables"
)

func TestParseInitFlags(t *testing.T) {
	base := []string{"--proxy-uid", "1337", "--mesh-port", "15008"}
	tests := []struct {
		desc    string
		args    []string
		wantErr string // substring; "" means success
	}{
		{desc: "defaults", args: base},
		{desc: "no proxy uid", args: []string{"--mesh-port", "15008"}, wantErr: "--proxy-uid is required"},
		{desc: "negative uid", args: []string{"--proxy-uid", "-5", "--mesh-port", "15008"}, wantErr: "--proxy-uid -5"},
		{desc: "no mesh port", args: []string{"--proxy-uid", "1337"}, wantErr: "--mesh-port: must be set"},
		{desc: "port too big", args: append(slices.Clone(base), "--outbound-port", "70000"), wantErr: "--outbound-port 70000"},
		{desc: "ports clash", args: append(slices.Clone(base), "--outbound-port", "15006"), wantErr: "--outbound-port: port 15006 is also --inbound-port"},
		{desc: "admin on mesh", args: append(slices.Clone(base), "--admin-port", "15008"), wantErr: "--admin-port: port 15008 is also --mesh-port"},
		{desc: "bad skip list", args: append(slices.Clone(base), "--skip-inbound-ports", "22,ssh"), wantErr: `--skip-inbound-ports: "ssh"`},
		{desc: "skipping the proxy", args: append(slices.Clone(base), "--skip-outbound-ports", "15001"), wantErr: "--skip-outbound-ports: port 15001 is the proxy's --outbound-port"},
		{desc: "remove needs no ports", args: []string{"--remove"}},
		{desc: "dry run and remove", args: []string{"--remove", "--dry-run"}, wantErr: "--dry-run and --remove"},
		{desc: "stray argument", args: append(slices.Clone(base), "now"), wantErr: "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := parseInitFlags(tc.args, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("parseInitFlags error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseInitFlags: %v", err)
			}
			if !c.remove && (c.rules.ProxyUID != 1337 || c.rules.InboundPort != 15006 || c.rules.OutboundPort != 15001 || c.rules.AdminPort != 15100) {
				t.Errorf("rules %+v", c.rules)
			}
			if !slices.Equal(c.families, []iptables.Family{iptables.IPv4}) {
				t.Errorf("families %v, want IPv4 alone without --ipv6", c.families)
			}
		})
	}
}

// TestInitDryRun: the dry run prints what Install would feed
// iptables-restore, the rules the iptables package pins in its golden
// files.
func TestInitDryRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := runInit([]string{"--proxy-uid", "1337", "--mesh-port", "15008", "--skip-inbound-ports", "22,15100,9000",
		"--skip-outbound-ports", "5432,3306", "--ipv6", "--dry-run"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var want string
	for _, name := range []string{"ipv4", "ipv6"} {
		b, err := os.ReadFile("../../internal/proxy/iptables/testdata/" + name + ".golden")
		if err != nil {
			t.Fatal(err)
		}
		want += string(b)
	}
	if stdout.String() != want {
		t.Errorf("dry run printed:\n%s\nwant:\n%s", stdout.String(), want)
	}
	stdout.Reset()
	if code := runInit([]string{"--mesh-port", "1"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--proxy-uid") {
		t.Errorf("a bad command line: exit %d, %q", code, stderr.String())
	}
}

func TestParseTransparentFlags(t *testing.T) {
	base := []string{"--control-plane", "x:1", "--workload", "a/b", "--transparent"}
	c, err := parseFlags(base, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.transparent; tr == nil || tr.OutboundPort != 15001 || tr.InboundPort != 15006 {
		t.Errorf("transparent %+v, want the defaults 15001 and 15006", tr)
	}
	if c, err := parseFlags(base[:4], io.Discard); err != nil || c.transparent != nil {
		t.Errorf("without --transparent: %+v, %v", c, err)
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--transparent-outbound-port", "0"}, "--transparent-outbound-port 0"},
		{[]string{"--transparent-inbound-port", "15001"}, "--transparent-inbound-port 15001: the same as --transparent-outbound-port"},
		{[]string{"--admin", "127.0.0.1:15006"}, "--transparent-inbound-port 15006: the same as the --admin port"},
	} {
		if _, err := parseFlags(append(slices.Clone(base), tc.args...), io.Discard); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%q: %v, want an error containing %q", tc.args, err, tc.wantErr)
		}
	}
}
