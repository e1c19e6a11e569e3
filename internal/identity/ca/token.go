package ca

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/weftmesh/weft/internal/identity"
)

// Join token errors. Like every token error, they never include the token or
// the key.
var (
	ErrTokenInvalid = errors.New("join token not valid")
	ErrTokenExpired = errors.New("join token expired")
	ErrTokenRevoked = errors.New("join token revoked")
)

const (
	tokenKeyFile = "token.key"
	revokedFile  = "revoked-tokens.json"
	tokenKeySize = 32
)

func (c *CA) loadTokenKey() error {
	p := c.keys.where(tokenKeyFile)
	b, err := c.keys.read(tokenKeyFile)
	switch {
	case errors.Is(err, os.ErrNotExist):
		key := make([]byte, tokenKeySize)
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if err := c.keys.write(tokenKeyFile, key, 0o600); err != nil {
			return fmt.Errorf("join token key: %w", err)
		}
		c.tokenKey = key
		return nil
	case err != nil:
		return fmt.Errorf("join token key: %w", err)
	case len(b) != tokenKeySize:
		return fmt.Errorf("join token key %s: want %d bytes, got %d", p, tokenKeySize, len(b))
	}
	c.tokenKey = b
	return nil
}

func (c *CA) loadRevoked() error {
	p := filepath.Join(c.dir, revokedFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("join token revocations: %w", err)
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return fmt.Errorf("join token revocations %s: %w", p, err)
	}
	for _, id := range ids {
		c.revoked[id] = struct{}{}
	}
	return nil
}

func (c *CA) mac(signingInput string) []byte {
	h := hmac.New(sha256.New, c.tokenKey)
	h.Write([]byte(signingInput))
	return h.Sum(nil)
}

// MintToken returns a join token for the workload identity cl.Namespace /
// cl.ServiceAccount, valid until
// cl.Expires. An empty cl.ID gets a random one; an empty cl.Root gets the
// pin of the active root. A Root given must pin a root of the bundle.
func (c *CA) MintToken(cl identity.TokenClaims) (string, error) {
	if _, err := identity.WorkloadID(c.td, cl.Namespace, cl.ServiceAccount); err != nil {
		return "", fmt.Errorf("mint join token: %w", err)
	}
	if !cl.Expires.After(c.now()) {
		return "", errors.New("mint join token: expiry must be in the future")
	}
	if cl.ID == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		cl.ID = base64.RawURLEncoding.EncodeToString(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl.Root == "" {
		cl.Root = identity.RootPin(c.active.root)
	} else if _, err := identity.CheckPin(c.roots, cl.Root); err != nil {
		return "", fmt.Errorf("mint join token: %w", err)
	}
	in, err := identity.TokenSigningInput(cl)
	if err != nil {
		return "", fmt.Errorf("mint join token: %w", err)
	}
	tok := in + "." + base64.RawURLEncoding.EncodeToString(c.mac(in))
	if len(tok) > identity.MaxTokenSize {
		return "", fmt.Errorf("mint join token: longer than %d bytes", identity.MaxTokenSize)
	}
	return tok, nil
}

// VerifyToken checks a join token's form, MAC (in constant time), expiry and
// revocation, and returns its claims.
func (c *CA) VerifyToken(tok string) (identity.TokenClaims, error) {
	in, mac, cl, err := identity.SplitToken(tok)
	if err != nil {
		return identity.TokenClaims{}, fmt.Errorf("%w: %w", ErrTokenInvalid, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !hmac.Equal(c.mac(in), mac) {
		return identity.TokenClaims{}, fmt.Errorf("%w: MAC does not match (altered, or minted by another control plane)", ErrTokenInvalid)
	}
	if !c.now().Before(cl.Expires) {
		return identity.TokenClaims{}, fmt.Errorf("%w: token %s expired at %s", ErrTokenExpired, cl.ID, cl.Expires.UTC().Format(time.RFC3339))
	}
	if _, ok := c.revoked[cl.ID]; ok {
		return identity.TokenClaims{}, fmt.Errorf("%w: token %s", ErrTokenRevoked, cl.ID)
	}
	if _, err := identity.WorkloadID(c.td, cl.Namespace, cl.ServiceAccount); err != nil {
		return identity.TokenClaims{}, fmt.Errorf("%w: token %s: %w", ErrTokenInvalid, cl.ID, err)
	}
	return cl, nil
}

// RevokeToken adds a token ID to the persisted revocation list and, when
// SetShareRevocation has set a way, shares it with the other replicas of
// the control plane.
func (c *CA) RevokeToken(id string) error {
	if err := checkTokenID(id); err != nil {
		return fmt.Errorf("revoke join token: %w", err)
	}
	c.mu.Lock()
	_, err := c.revokeLocked([]string{id})
	share := c.shareRevocation
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("revoke join token: %w", err)
	}
	// Sharing writes to the API server, retried: outside the lock, so
	// that signing never waits on it. The token is refused here already.
	if share != nil {
		if err := share(id); err != nil {
			return fmt.Errorf("revoke join token %s: revoked here, but not shared with the other replicas: %w", id, err)
		}
	}
	return nil
}

// SetShareRevocation has RevokeToken hand each revoked ID to share, which
// the control plane writes where its replicas read it (MergeRevocations).
func (c *CA) SetShareRevocation(share func(id string) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.shareRevocation = share
}

// MergeRevocations adds token IDs revoked at another replica to this
// one's persisted list, and returns how many it did not have. IDs that
// are not token IDs are an error, and none is added.
func (c *CA) MergeRevocations(ids []string) (int, error) {
	for _, id := range ids {
		if err := checkTokenID(id); err != nil {
			return 0, fmt.Errorf("revoked join tokens: %w", err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.revokeLocked(ids)
	if err != nil {
		return 0, fmt.Errorf("revoked join tokens: %w", err)
	}
	return n, nil
}

// checkTokenID refuses what could not be a join token's ID.
func checkTokenID(id string) error {
	probe := identity.TokenClaims{ID: id, Namespace: "x", ServiceAccount: "x", Expires: time.Unix(1, 0), Root: "sha256:" + fmt.Sprintf("%064x", 0)}
	if _, err := identity.TokenSigningInput(probe); err != nil {
		return fmt.Errorf("bad token ID: %w", err)
	}
	return nil
}

// revokeLocked adds ids to the revocation list, persisted first, and
// returns how many are new.
func (c *CA) revokeLocked(ids []string) (int, error) {
	var added []string
	for _, id := range ids {
		if _, ok := c.revoked[id]; !ok && !slices.Contains(added, id) {
			added = append(added, id)
		}
	}
	if len(added) == 0 {
		return 0, nil
	}
	all := slices.Concat(slices.Collect(maps.Keys(c.revoked)), added)
	sort.Strings(all)
	b, err := json.MarshalIndent(all, "", " ")
	if err != nil {
		return 0, err
	}
	if err := writeFileAtomic(filepath.Join(c.dir, revokedFile), append(b, '\n'), 0o600); err != nil {
		return 0, err
	}
	for _, id := range added {
		c.revoked[id] = struct{}{}
	}
	return len(added), nil
}
