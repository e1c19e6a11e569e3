package identity_test

import (
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/identity"
)

// FuzzParseToken: the proxy parses join tokens it was handed without being
// able to check them. Parsing never panics, accepts only canonical tokens,
// and its errors never echo the input.
func FuzzParseToken(f *testing.F) {
	f.Add("weft1.e30.AAAA")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		cl, err := identity.ParseTokenUnverified(s)
		if err != nil {
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes the token: %v", err)
			}
			return
		}
		in, err := identity.TokenSigningInput(cl)
		if err != nil {
			t.Fatalf("parsed claims do not re-encode: %v", err)
		}
		if !strings.HasPrefix(s, in+".") {
			t.Fatalf("accepted a non-canonical token %q", s)
		}
	})
}
