package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/identity/ca"
)

// fieldManager names the control plane's writes in managedFields.
const fieldManager = "weft-control-plane"

// revokedKey, in the CA Secret, lists the join token IDs revoked at any
// replica (JSON), which every replica merges into its own list.
const revokedKey = "revoked-tokens.json"

// revokedIn reads the revoked token IDs of a CA Secret.
func revokedIn(label string, data map[string][]byte) ([]string, error) {
	b, ok := data[revokedKey]
	if !ok {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("%s key %q: %w", label, revokedKey, err)
	}
	return ids, nil
}

// caSecretAttempts bounds how often loadCASecret reads the Secret again
// after losing a race to write it: each loss means another replica wrote
// it, so the next read finds a CA, unless the Secret keeps changing.
const caSecretAttempts = 5

// loadCASecret loads the mesh's CA from the Secret namespace/name, which
// every replica of the control plane shares. The Secret must exist (weft
// install renders it empty, so the control plane needs no create). An
// empty one gets a new CA, written with the resourceVersion read: of two
// replicas starting together one write wins, and the other, refused
// with a Conflict, reads the Secret again and loads the winner's CA, so
// both sign under one root. The Secret holds the admin token beside the
// CA (key adminTokenFile), so that either replica takes the operator's
// calls. stateDir keeps the replica's own state (join token revocations,
// the log of issued leaves).
func loadCASecret(ctx context.Context, client kubernetes.Interface, namespace, name, stateDir string, td spiffeid.TrustDomain, log *slog.Logger) (c *ca.CA, adminToken string, err error) {
	label := "Secret " + namespace + "/" + name
	secrets := client.CoreV1().Secrets(namespace)
	for range caSecretAttempts {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, "", fmt.Errorf("CA %s: %w", label, err)
		}
		c, err := ca.LoadOrCreateFrom(s.Data, label, stateDir, td, time.Now)
		if err != nil {
			return nil, "", fmt.Errorf("CA: %w", err)
		}
		if len(s.Data) > 0 {
			token := strings.TrimSpace(string(s.Data[adminTokenFile]))
			if token == "" {
				return nil, "", fmt.Errorf("CA %s key %q: missing or empty", label, adminTokenFile)
			}
			revoked, err := revokedIn(label, s.Data)
			if err != nil {
				return nil, "", fmt.Errorf("CA: %w", err)
			}
			if _, err := c.MergeRevocations(revoked); err != nil {
				return nil, "", fmt.Errorf("CA %s: %w", label, err)
			}
			log.Info("CA loaded", "secret", label, "ca", c)
			return c, token, nil
		}
		token := rand.Text()
		s.Data = c.Files()
		s.Data[adminTokenFile] = []byte(token)
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
		switch {
		case err == nil:
			log.Info("CA made and stored", "secret", label, "ca", c)
			return c, token, nil
		case apierrors.IsConflict(err):
			log.Info("another replica stored a CA first; loading it", "secret", label)
		default:
			return nil, "", fmt.Errorf("CA: storing the new CA in %s: %w", label, err)
		}
	}
	return nil, "", fmt.Errorf("CA %s: changed under every one of %d attempts to load it", label, caSecretAttempts)
}

// caSecret keeps the CA of a replica and the Secret its replicas share in
// step, after loadCASecret: this replica's rotation steps are written to
// the Secret before they take effect, and the steps other replicas write
// are read back within poll.
type caSecret struct {
	client          kubernetes.Interface
	namespace, name string
	ca              *ca.CA
	log             *slog.Logger
	poll            time.Duration
	// changed pushes a bundle read back to the proxies.
	changed func()
}

// caSecretWriteTimeout bounds a rotation step's write: the CA calls
// persist holding its lock, with no context of the admin call's.
const caSecretWriteTimeout = 10 * time.Second

// persist writes the files of a rotation step, refusing if the Secret no
// longer holds the step it comes from: another replica took a step this
// one has not read yet, and the operator should try again once it has.
func (s *caSecret) persist(files map[string][]byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), caSecretWriteTimeout)
	defer cancel()
	label := "Secret " + s.namespace + "/" + s.name
	secrets := s.client.CoreV1().Secrets(s.namespace)
	sec, err := secrets.Get(ctx, s.name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("CA %s: %w", label, err)
	}
	if have, from := ca.FilesVersion(sec.Data), ca.FilesVersion(files)-1; have != from {
		return fmt.Errorf("CA %s holds bundle version %d, not %d, which this step comes from: another replica changed the CA; try again in %s", label, have, from, s.poll)
	}
	// The admin token and the revocations are the control plane's, not the
	// CA's files: keep them as they are.
	for _, k := range []string{adminTokenFile, revokedKey} {
		if v, ok := sec.Data[k]; ok {
			files[k] = v
		} else {
			delete(files, k)
		}
	}
	sec.Data = files
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("CA: storing the rotation step in %s: %w", label, err)
	}
	return nil
}

// shareRevocation adds a revoked join token ID to the Secret's list, for
// the other replicas to merge.
func (s *caSecret) shareRevocation(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), caSecretWriteTimeout)
	defer cancel()
	label := "Secret " + s.namespace + "/" + s.name
	secrets := s.client.CoreV1().Secrets(s.namespace)
	for range caSecretAttempts {
		sec, err := secrets.Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("CA %s: %w", label, err)
		}
		ids, err := revokedIn(label, sec.Data)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) {
			return nil
		}
		ids = append(ids, id)
		slices.Sort(ids)
		b, err := json.Marshal(ids)
		if err != nil {
			return err
		}
		if sec.Data == nil {
			sec.Data = map[string][]byte{}
		}
		sec.Data[revokedKey] = b
		_, err = secrets.Update(ctx, sec, metav1.UpdateOptions{FieldManager: fieldManager})
		if !apierrors.IsConflict(err) {
			if err != nil {
				return fmt.Errorf("CA %s: %w", label, err)
			}
			return nil
		}
	}
	return fmt.Errorf("CA %s: changed under every one of %d attempts to add a revocation", label, caSecretAttempts)
}

// run reads the Secret every poll until ctx ends, and loads the steps
// and revocations other replicas wrote. A Secret that cannot be read, or whose data does
// not make a CA, is logged and the replica keeps the CA it has.
func (s *caSecret) run(ctx context.Context) error {
	t := time.NewTicker(s.poll)
	defer t.Stop()
	label := "Secret " + s.namespace + "/" + s.name
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		sec, err := s.client.CoreV1().Secrets(s.namespace).Get(ctx, s.name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("CA Secret not read; keeping the CA loaded", "secret", label, "error", err)
			}
			continue
		}
		changed, err := s.ca.Reload(sec.Data)
		switch {
		case err != nil:
			s.log.Error("CA Secret does not hold a CA; keeping the CA loaded", "secret", label, "error", err)
		case changed:
			s.log.Info("CA changed by another replica; loaded", "secret", label, "ca", s.ca)
			s.changed()
		}
		revoked, err := revokedIn(label, sec.Data)
		if err == nil {
			var n int
			if n, err = s.ca.MergeRevocations(revoked); n > 0 {
				s.log.Info("join tokens revoked at another replica", "secret", label, "tokens", n)
			}
		}
		if err != nil {
			s.log.Error("CA Secret's revoked join tokens not read", "secret", label, "error", err)
		}
	}
}
