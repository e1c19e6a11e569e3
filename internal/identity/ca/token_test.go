package ca_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/ca"
)

func TestTokens(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	dir := t.TempDir()
	c, err := ca.LoadOrCreate(dir, td, clock)
	if err != nil {
		t.Fatal(err)
	}
	other := newCA(t, clock)
	mint := func(cl identity.TokenClaims) string {
		t.Helper()
		tok, err := c.MintToken(cl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	good := mint(identity.TokenClaims{Namespace: "shop", ServiceAccount: "catalog", Expires: now.Add(time.Hour)})
	short := mint(identity.TokenClaims{Namespace: "shop", ServiceAccount: "catalog", Expires: now.Add(time.Second)})
	revoked := mint(identity.TokenClaims{Namespace: "shop", ServiceAccount: "catalog", Expires: now.Add(time.Hour)})
	otherTok, err := other.MintToken(identity.TokenClaims{Namespace: "shop", ServiceAccount: "catalog", Expires: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	rc, _ := identity.ParseTokenUnverified(revoked)
	if err := c.RevokeToken(rc.ID); err != nil {
		t.Fatal(err)
	}

	parts := strings.Split(good, ".")
	claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := strings.Replace(string(claims), `"sa":"catalog"`, `"sa":"admin"`, 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
	mac, _ := base64.RawURLEncoding.DecodeString(parts[2])
	mac[0] ^= 1
	badMAC := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(mac)

	if cl, err := c.VerifyToken(good); err != nil {
		t.Fatalf("good token: %v", err)
	} else if cl.Namespace != "shop" || cl.ServiceAccount != "catalog" || cl.Root != identity.RootPin(c.ActiveRoot()) || cl.ID == "" {
		t.Errorf("claims %+v", cl)
	}
	if cl, err := identity.ParseTokenUnverified(good); err != nil || cl.Root != identity.RootPin(c.ActiveRoot()) {
		t.Errorf("ParseTokenUnverified = %+v, %v", cl, err)
	}

	now = now.Add(2 * time.Second) // short has expired
	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"expired", short, ca.ErrTokenExpired},
		{"revoked", revoked, ca.ErrTokenRevoked},
		{"tampered claims", tampered, ca.ErrTokenInvalid},
		{"tampered MAC", badMAC, ca.ErrTokenInvalid},
		{"another control plane's", otherTok, ca.ErrTokenInvalid},
		{"empty", "", identity.ErrTokenMalformed},
		{"two parts", parts[0] + "." + parts[1], identity.ErrTokenMalformed},
		{"wrong prefix", "weft2." + parts[1] + "." + parts[2], identity.ErrTokenMalformed},
		{"padded", good + "=", identity.ErrTokenMalformed},
		{"newline in MAC", parts[0] + "." + parts[1] + "." + parts[2][:10] + "\n" + parts[2][10:], identity.ErrTokenMalformed},
		{"oversize", good + strings.Repeat("A", identity.MaxTokenSize), identity.ErrTokenMalformed},
		{"unknown field", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), "{", `{"admin":true,`, 1))) + "." + parts[2], identity.ErrTokenMalformed},
		{"re-cased field", parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"sa"`, `"SA"`, 1))) + "." + parts[2], identity.ErrTokenMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.VerifyToken(tc.tok)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(tc.tok) > 20 && strings.Contains(err.Error(), tc.tok[len(tc.tok)-20:]) {
				t.Errorf("error includes the token: %v", err)
			}
		})
	}

	// Revocations survive a restart.
	c2, err := ca.LoadOrCreate(dir, td, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.VerifyToken(revoked); !errors.Is(err, ca.ErrTokenRevoked) {
		t.Errorf("revoked token after restart: %v", err)
	}
	if _, err := c2.VerifyToken(good); err != nil {
		t.Errorf("good token after restart: %v", err)
	}

	for _, bad := range []identity.TokenClaims{
		{Namespace: "", ServiceAccount: "x", Expires: now.Add(time.Hour)},
		{Namespace: "x", ServiceAccount: "a/b", Expires: now.Add(time.Hour)},
		{Namespace: "x", ServiceAccount: "y", Expires: now.Add(-time.Hour)},
		{Namespace: "x", ServiceAccount: "y", Expires: now.Add(time.Hour), Root: identity.RootPin(other.ActiveRoot())},
	} {
		if _, err := c.MintToken(bad); err == nil {
			t.Errorf("MintToken(%+v) succeeded", bad)
		}
	}
	if err := c.RevokeToken("not/an id"); err == nil {
		t.Error("RevokeToken accepted a malformed ID")
	}
}
