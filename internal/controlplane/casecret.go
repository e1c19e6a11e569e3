package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/identity/ca"
)

// fieldManager names the control plane's writes in managedFields.
const fieldManager = "weft-control-plane"

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
// both sign under one root. stateDir keeps the replica's own state (join
// token revocations, the log of issued leaves).
func loadCASecret(ctx context.Context, client kubernetes.Interface, namespace, name, stateDir string, td spiffeid.TrustDomain, log *slog.Logger) (*ca.CA, error) {
	label := "Secret " + namespace + "/" + name
	secrets := client.CoreV1().Secrets(namespace)
	for range caSecretAttempts {
		s, err := secrets.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("CA %s: %w", label, err)
		}
		c, err := ca.LoadOrCreateFrom(s.Data, label, stateDir, td, time.Now)
		if err != nil {
			return nil, fmt.Errorf("CA: %w", err)
		}
		if len(s.Data) > 0 {
			log.Info("CA loaded", "secret", label, "ca", c)
			return c, nil
		}
		s.Data = c.Files()
		_, err = secrets.Update(ctx, s, metav1.UpdateOptions{FieldManager: fieldManager})
		switch {
		case err == nil:
			log.Info("CA made and stored", "secret", label, "ca", c)
			return c, nil
		case apierrors.IsConflict(err):
			log.Info("another replica stored a CA first; loading it", "secret", label)
		default:
			return nil, fmt.Errorf("CA: storing the new CA in %s: %w", label, err)
		}
	}
	return nil, fmt.Errorf("CA %s: changed under every one of %d attempts to load it", label, caSecretAttempts)
}
