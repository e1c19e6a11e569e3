package identity

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Join token format: weft1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>,
// unpadded base64url, the MAC computed over "weft1.<claims>". Minting and
// verifying the MAC is the CA's (internal/identity/ca); this file is the part
// a proxy needs: reading the claims, notably the root pin.
const (
	TokenPrefix = "weft1"
	// MaxTokenSize bounds every token accepted.
	MaxTokenSize = 4096
	tokenMACSize = 32
)

// ErrTokenMalformed is wrapped by every error about a token's form. Token
// errors never include the token itself.
var ErrTokenMalformed = errors.New("malformed join token")

// TokenClaims is what a join token grants: the workload identity
// ns/sa, until Expires,
// for a control plane whose active root has pin Root (see RootPin).
type TokenClaims struct {
	ID             string
	Namespace      string
	ServiceAccount string
	Expires        time.Time
	Root           string
}

// tokenWire is the JSON form; its field order is the canonical order.
type tokenWire struct {
	ID   string `json:"id"`
	NS   string `json:"ns"`
	SA   string `json:"sa"`
	Exp  int64  `json:"exp"`
	Root string `json:"root"`
}

func (c TokenClaims) validate() error {
	switch {
	case c.ID == "" || len(c.ID) > 64:
		return fmt.Errorf("%w: claim id: must be 1 to 64 characters", ErrTokenMalformed)
	case c.Namespace == "":
		return fmt.Errorf("%w: claim ns: empty", ErrTokenMalformed)
	case c.ServiceAccount == "":
		return fmt.Errorf("%w: claim sa: empty", ErrTokenMalformed)
	case c.Expires.Unix() <= 0:
		return fmt.Errorf("%w: claim exp: missing", ErrTokenMalformed)
	case !strings.HasPrefix(c.Root, "sha256:") || len(c.Root) != len("sha256:")+64:
		return fmt.Errorf("%w: claim root: must be sha256:<64 hex digits>", ErrTokenMalformed)
	}
	if !isBase64URL(c.ID) {
		return fmt.Errorf("%w: claim id: only base64url characters allowed", ErrTokenMalformed)
	}
	return nil
}

// TokenSigningInput returns "weft1.<base64url(claims)>", the part of a token
// the MAC covers.
func TokenSigningInput(c TokenClaims) (string, error) {
	if err := c.validate(); err != nil {
		return "", err
	}
	b, err := json.Marshal(tokenWire{ID: c.ID, NS: c.Namespace, SA: c.ServiceAccount, Exp: c.Expires.Unix(), Root: c.Root})
	if err != nil {
		return "", err
	}
	return TokenPrefix + "." + base64.RawURLEncoding.EncodeToString(b), nil
}

// SplitToken parses a token strictly without checking its MAC: it returns the
// signing input, the MAC and the claims. Claims must be the canonical JSON
// that TokenSigningInput writes (no unknown, duplicate or re-cased fields).
func SplitToken(tok string) (signingInput string, mac []byte, c TokenClaims, err error) {
	if len(tok) > MaxTokenSize {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: longer than %d bytes", ErrTokenMalformed, MaxTokenSize)
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: want 3 dot-separated parts, got %d", ErrTokenMalformed, len(parts))
	}
	for _, p := range parts[1:] {
		if !isBase64URL(p) {
			return "", nil, TokenClaims{}, fmt.Errorf("%w: only unpadded base64url allowed after the prefix", ErrTokenMalformed)
		}
	}
	if parts[0] != TokenPrefix {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: unknown version prefix, want %s", ErrTokenMalformed, TokenPrefix)
	}
	payload, err := base64.RawURLEncoding.Strict().DecodeString(parts[1])
	if err != nil {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: claims are not unpadded base64url", ErrTokenMalformed)
	}
	mac, err = base64.RawURLEncoding.Strict().DecodeString(parts[2])
	if err != nil || len(mac) != tokenMACSize {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: MAC is not %d bytes of unpadded base64url", ErrTokenMalformed, tokenMACSize)
	}
	var w tokenWire
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: claims are not valid JSON", ErrTokenMalformed)
	}
	c = TokenClaims{ID: w.ID, Namespace: w.NS, ServiceAccount: w.SA, Expires: time.Unix(w.Exp, 0), Root: w.Root}
	canon, err := TokenSigningInput(c)
	if err != nil {
		return "", nil, TokenClaims{}, err
	}
	signingInput = parts[0] + "." + parts[1]
	if canon != signingInput {
		return "", nil, TokenClaims{}, fmt.Errorf("%w: claims are not in canonical form", ErrTokenMalformed)
	}
	return signingInput, mac, c, nil
}

// ParseTokenUnverified reads a token's claims without checking its MAC, which
// only the CA can. A proxy uses it to learn the root pin it must find in the
// control plane's bundle; nothing else in it may be trusted.
func ParseTokenUnverified(tok string) (TokenClaims, error) {
	_, _, c, err := SplitToken(tok)
	return c, err
}

func isBase64URL(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// IsJoinToken reports whether tok is in the join token format (whether or
// not it is valid), as opposed to another credential such as a Kubernetes
// service account token.
func IsJoinToken(tok string) bool { return strings.HasPrefix(tok, TokenPrefix+".") }
