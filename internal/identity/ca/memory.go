package ca

import (
	"bytes"
	"encoding/json"
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
	return c.filesLocked()
}

func (c *CA) filesLocked() map[string][]byte {
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

// SetPersist has a CA kept in memory call persist with its Files at each
// step of a root rotation, before the step takes effect: if persist fails
// the step does too, and is undone. The control plane writes them to the
// Secret its replicas share, which the others Reload.
func (c *CA) SetPersist(persist func(files map[string][]byte) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.persist = persist
}

// Reload makes a CA kept in memory the one files hold, as another replica
// persisted them, if they are of a later rotation step than its own
// (files read before this replica's last step are not), and says whether
// it did (the caller then pushes the bundle and renews what the old root
// signed). Revocations and the leaf log, which are this process's own,
// stay as they are.
func (c *CA) Reload(files map[string][]byte) (changed bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.keys.(*memStore)
	if !ok {
		return false, errors.New("CA: only a CA kept in memory reloads")
	}
	next := &CA{td: c.td, now: c.now, keys: &memStore{label: m.label, files: maps.Clone(files)}}
	b, err := next.keys.read(stateFile)
	if err != nil {
		return false, fmt.Errorf("CA: %w", err)
	}
	if err := next.load(b); err != nil {
		return false, err
	}
	if next.bundleVersion <= c.bundleVersion {
		return false, nil
	}
	c.gens, c.active, c.next, c.bundleVersion, c.keys = next.gens, next.active, next.next, next.bundleVersion, next.keys
	c.syncRoots()
	return true, nil
}

// FilesVersion is the bundle version (see BundleVersion) of a CA's Files,
// 0 when they hold none: each rotation step persists the next one, so a
// writer can tell whether what it replaces is the step it comes from.
func FilesVersion(files map[string][]byte) uint64 {
	var st state
	if json.Unmarshal(files[stateFile], &st) != nil {
		return 0
	}
	return st.BundleVersion
}

// BundlePEM is the trust bundle, PEM, oldest root first: what a proxy
// given only a file of roots trusts.
func (c *CA) BundlePEM() []byte {
	var b bytes.Buffer
	for _, r := range c.Bundle() {
		b.Write(certPEM(r))
	}
	return b.Bytes()
}
