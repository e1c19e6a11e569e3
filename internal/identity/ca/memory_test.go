package ca_test

import (
	"bytes"
	"encoding/pem"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

const label = "Secret weft-system/weft-ca"

func TestLoadOrCreateFrom(t *testing.T) {
	first, err := ca.LoadOrCreateFrom(nil, label, t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	files := first.Files()
	want := []string{"intermediate-1.crt", "intermediate-1.key", "root-1.crt", "root-1.key", "state.json", "token.key"}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Fatalf("Files() has %q, want %q", got, want)
	}
	tok, err := first.MintToken(identity.TokenClaims{Namespace: "a", ServiceAccount: "b", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}

	// Another replica, with its own state directory, loads the same CA.
	second, err := ca.LoadOrCreateFrom(files, label, t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !second.ActiveRoot().Equal(first.ActiveRoot()) || !second.Intermediate().Equal(first.Intermediate()) {
		t.Error("loading the files made a new root or intermediate")
	}
	if _, err := second.VerifyToken(tok); err != nil {
		t.Errorf("a join token minted by the first replica: %v", err)
	}
	if blk, rest := pem.Decode(second.BundlePEM()); blk == nil || !bytes.Equal(blk.Bytes, first.ActiveRoot().Raw) || len(rest) != 0 {
		t.Errorf("BundlePEM = %q, want the root alone", second.BundlePEM())
	}
	if err := second.PrepareRotation(); !errors.Is(err, ca.ErrRotation) {
		t.Errorf("rotating a shared CA: got %v, want ErrRotation", err)
	}
	dirCA := newCA(t, nil)
	if dirCA.Files() != nil {
		t.Error("a CA kept in a directory returns Files")
	}

	other := newCA(t, nil).ActiveRoot()
	for _, tc := range []struct {
		desc, wantKey string
		change        func(map[string][]byte)
	}{
		{"no state", "state.json", func(f map[string][]byte) { delete(f, "state.json") }},
		{"no join token key", "token.key", func(f map[string][]byte) { delete(f, "token.key") }},
		{"state not JSON", "state.json", func(f map[string][]byte) { f["state.json"] = []byte("{") }},
		{"no root", "root-1.crt", func(f map[string][]byte) { delete(f, "root-1.crt") }},
		{"root not PEM", "root-1.crt", func(f map[string][]byte) { f["root-1.crt"] = []byte("not PEM") }},
		{"root key not PEM", "root-1.key", func(f map[string][]byte) { f["root-1.key"] = []byte("not PEM") }},
		{"another root", "root-1.key", func(f map[string][]byte) {
			f["root-1.crt"] = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw})
		}},
		{"short join token key", "token.key", func(f map[string][]byte) { f["token.key"] = []byte("short") }},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			bad := maps.Clone(files)
			tc.change(bad)
			_, err := ca.LoadOrCreateFrom(bad, label, t.TempDir(), td, nil)
			if err == nil {
				t.Fatal("loaded")
			}
			if msg := err.Error(); !strings.Contains(msg, label) || !strings.Contains(msg, tc.wantKey) {
				t.Errorf("error %q does not name %s and the key %s", msg, label, tc.wantKey)
			}
			for _, k := range []string{"root-1.key", "intermediate-1.key"} {
				if body := strings.TrimSpace(string(files[k])); strings.Contains(err.Error(), body[40:80]) {
					t.Errorf("error holds key material of %s", k)
				}
			}
		})
	}
}
