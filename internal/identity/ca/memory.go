package ca

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// LoadOrCreateFrom is LoadOrCreate for a CA kept outside the file system,
// as the control plane keeps one in a Kubernetes Secret that its replicas
// share. files holds, by file name, what LoadOrCreate keeps in its
// directory (state.json, root-N and intermediate-N certificates and keys)
// and the join token key (token.key), so that every replica signs under
// one root and accepts the join tokens any of them mints. An empty files
// makes a new CA, which Files returns for the caller to store. label
// names where files come from in errors ("Secret weft-system/weft-ca").
// stateDir keeps what is this process's own: join token revocations and
// the log of issued leaves.
func LoadOrCreateFrom(files map[string][]byte, label, stateDir string, trustDomain spiffeid.TrustDomain, now func() time.Time) (*CA, error) {
	c, err := newCA(stateDir, trustDomain, now)
	if err != nil {
		return nil, err
	}
	store := &memStore{label: label, files: maps.Clone(files)}
	if store.files == nil {
		store.files = map[string][]byte{}
	}
	c.keys = store
	if len(files) == 0 {
		if err := c.create(); err != nil {
			return nil, err
		}
	} else {
		// A missing key here is a Secret damaged or written by hand: making
		// one would leave each replica with its own.
		for _, name := range []string{stateFile, tokenKeyFile} {
			if _, ok := files[name]; !ok {
				return nil, fmt.Errorf("CA in %s: %w", store.where(name), os.ErrNotExist)
			}
		}
		if err := c.load(files[stateFile]); err != nil {
			return nil, err
		}
	}
	if err := c.loadAux(); err != nil {
		return nil, err
	}
	return c, nil
}

// Files returns what LoadOrCreateFrom loads the CA from, by file name, or
// nil for a CA kept in a directory. It holds private keys: store it as a
// secret, and never log it.
func (c *CA) Files() map[string][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.keys.(*memStore)
	if !ok {
		return nil
	}
	out := make(map[string][]byte, len(m.files))
	for k, v := range m.files {
		out[k] = bytes.Clone(v)
	}
	return out
}

// errInMemory refuses what a CA kept outside the file system cannot do
// yet: its replicas would each change their own copy.
var errInMemory = errors.New("the CA is shared by the control plane's replicas (kept in a Kubernetes Secret); rotating its root there is not supported yet")

// BundlePEM is the trust bundle, PEM, oldest root first: what a proxy
// given only a file of roots trusts.
func (c *CA) BundlePEM() []byte {
	var b bytes.Buffer
	for _, r := range c.Bundle() {
		b.Write(certPEM(r))
	}
	return b.Bytes()
}
