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

// TestRotationInMemory: each rotation step of a CA kept in memory is
// persisted before it takes effect, and undone when persisting fails;
// another replica reloads every step from what was persisted.
func TestRotationInMemory(t *testing.T) {
	first, err := ca.LoadOrCreateFrom(nil, label, t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := ca.LoadOrCreateFrom(first.Files(), label, t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldRoot := first.ActiveRoot()

	refused := errors.New("the Secret changed since it was read")
	before := first.Files()
	first.SetPersist(func(map[string][]byte) error { return refused })
	if err := first.PrepareRotation(); !errors.Is(err, ca.ErrRotation) || !errors.Is(err, refused) {
		t.Fatalf("a step that cannot be persisted: got %v", err)
	}
	if first.RotationPhase() != "" || len(first.Bundle()) != 1 || !maps.EqualFunc(first.Files(), before, bytes.Equal) {
		t.Fatal("a step that could not be persisted was not undone")
	}

	var stored map[string][]byte
	first.SetPersist(func(f map[string][]byte) error { stored = f; return nil })
	reload := func(step string, wantChanged bool) {
		t.Helper()
		changed, err := second.Reload(stored)
		if err != nil {
			t.Fatalf("%s: reload: %v", step, err)
		}
		if changed != wantChanged || second.BundleVersion() != first.BundleVersion() || !second.ActiveRoot().Equal(first.ActiveRoot()) ||
			!bytes.Equal(second.BundlePEM(), first.BundlePEM()) {
			t.Errorf("%s: the other replica reloaded (changed %v) bundle version %d, want %d as the first's (changed %v)",
				step, changed, second.BundleVersion(), first.BundleVersion(), wantChanged)
		}
	}
	if err := first.PrepareRotation(); err != nil {
		t.Fatal(err)
	}
	if _, ok := stored["root-2.key"]; !ok || len(first.Bundle()) != 2 {
		t.Fatalf("prepare persisted %d files, no root-2.key, or the bundle holds %d roots", len(stored), len(first.Bundle()))
	}
	if v := ca.FilesVersion(stored); v != ca.FilesVersion(before)+1 || v != first.BundleVersion() {
		t.Errorf("FilesVersion after prepare = %d, before %d, the CA's %d", v, ca.FilesVersion(before), first.BundleVersion())
	}
	reload("prepare", true)
	reload("prepare, again", false)
	if changed, err := second.Reload(before); changed || err != nil || len(second.Bundle()) != 2 {
		t.Errorf("reloading files of an earlier step: changed %v, %v, %d roots; want nothing done", changed, err, len(second.Bundle()))
	}
	if err := first.ActivateNewRoot(); err != nil {
		t.Fatal(err)
	}
	reload("activate", true)
	if err := first.FinishRotation(true); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"root-1.key", "root-1.crt", "intermediate-1.key", "intermediate-1.crt"} {
		if _, ok := stored[gone]; ok {
			t.Errorf("finish persisted the old root's %s", gone)
		}
	}
	reload("finish", true)
	if second.ActiveRoot().Equal(oldRoot) || len(second.Bundle()) != 1 {
		t.Error("the other replica still has the old root")
	}
	if _, err := newCA(t, nil).Reload(stored); err == nil {
		t.Error("a CA kept in a directory reloaded files")
	}
}

// TestRevocationsShared: a revocation is handed to the other replicas,
// which merge it into their own persisted list.
func TestRevocationsShared(t *testing.T) {
	first, err := ca.LoadOrCreateFrom(nil, label, t.TempDir(), td, nil)
	if err != nil {
		t.Fatal(err)
	}
	secondDir := t.TempDir()
	second, err := ca.LoadOrCreateFrom(first.Files(), label, secondDir, td, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := first.MintToken(identity.TokenClaims{Namespace: "a", ServiceAccount: "b", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := second.VerifyToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	var shared []string
	first.SetShareRevocation(func(id string) error { shared = append(shared, id); return nil })
	if err := first.RevokeToken(claims.ID); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shared, []string{claims.ID}) {
		t.Fatalf("shared %q, want the revoked ID", shared)
	}
	for i, want := range []int{1, 0} {
		if n, err := second.MergeRevocations(shared); n != want || err != nil {
			t.Errorf("merge %d: %d new, %v; want %d", i, n, err, want)
		}
	}
	if _, err := second.VerifyToken(tok); !errors.Is(err, ca.ErrTokenRevoked) {
		t.Errorf("the other replica takes a token revoked at the first: %v", err)
	}
	restarted, err := ca.LoadOrCreateFrom(first.Files(), label, secondDir, td, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.VerifyToken(tok); !errors.Is(err, ca.ErrTokenRevoked) {
		t.Errorf("a merged revocation did not survive a restart: %v", err)
	}
	if _, err := second.MergeRevocations([]string{"not an ID!"}); err == nil {
		t.Error("merged what is no token ID")
	}
	refused := errors.New("API server unreachable")
	first.SetShareRevocation(func(string) error { return refused })
	if err := first.RevokeToken("other-id"); !errors.Is(err, refused) || !strings.Contains(err.Error(), "revoked here") {
		t.Errorf("a revocation that could not be shared: %v", err)
	}
}
