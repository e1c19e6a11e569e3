package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The gostd pair itself runs in the smoke run (make bench-smoke), every
// workload through it; here, the configurations it refuses.
func TestGoHopRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := makeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	p := &peerPorts{Dir: dir, Certs: c}
	conf, err := render("gostd/server.json.tmpl", dir, p)
	if err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ desc, conf, want string }{
		{"unknown role", strings.Replace(string(good), `"server"`, `"middle"`, 1), `role "middle": want client or server`},
		{"not JSON", "role: server", "invalid character"},
		{"missing key", strings.Replace(string(good), c.ServerKey, filepath.Join(dir, "nope.pem"), 1), "nope.pem"},
		{"no CA", strings.Replace(string(good), c.CA, c.ServerKey, 1), "no certificate in"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hop.json")
			if err := os.WriteFile(path, []byte(tc.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := goHop(path); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("goHop = %v, want an error with %q", err, tc.want)
			}
		})
	}
}
