package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/identity/ca"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/source/kube"
)

// bundleWriter keeps the ConfigMap inject.CABundleConfigMap, the CA's
// trust bundle, in every namespace of the mesh, for injected proxies to
// mount: a proxy that proves itself with a service account token has no
// other way to know the control plane's CA.
//
// The mesh's namespaces are the kube source's: those labelled
// weft.dev/inject=enabled, and any other holding a meshed Pod, started or
// not (a Pod's volumes are mounted before it gets an IP, so a Pod waiting
// for its ConfigMap is not a workload yet). A namespace that leaves the
// mesh keeps its ConfigMap: the bundle is public, and the control plane
// has no right to delete.
type bundleWriter struct {
	client kubernetes.Interface
	ca     *ca.CA
	mesh   *kube.Source
	log    *slog.Logger
	// poll is how often the bundle is compared with what was written,
	// since a rotation step changes it with no event to wait on; resync
	// how often everything is written again, which retries failed writes.
	poll, resync time.Duration
}

// run keeps the ConfigMaps current until ctx ends.
func (w *bundleWriter) run(ctx context.Context) error {
	configMaps := informers.NewSharedInformerFactoryWithOptions(w.client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", inject.CABundleConfigMap).String()
	}))
	cmInformer := configMaps.Core().V1().ConfigMaps()
	kick := make(chan struct{}, 1)
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	if _, err := cmInformer.Informer().AddEventHandler(handler); err != nil {
		return fmt.Errorf("CA bundle ConfigMaps: %w", err)
	}
	configMaps.Start(ctx.Done())
	defer configMaps.Shutdown()
	for typ, ok := range configMaps.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("CA bundle ConfigMaps: %v informer did not sync: %w", typ, ctx.Err())
		}
	}
	poll := time.NewTicker(w.poll)
	defer poll.Stop()
	resync := time.NewTicker(w.resync)
	defer resync.Stop()
	var written uint64
	for {
		namespaces, synced := w.mesh.MeshNamespaces()
		version := w.ca.BundleVersion()
		if err := w.reconcile(ctx, namespaces, cmInformer.Lister()); err != nil {
			w.log.Warn("CA bundle ConfigMaps not all written; will try again", "error", err)
		} else if version != written {
			w.log.Info("CA bundle ConfigMaps current", "bundle_version", version)
		}
		written = version
		for again := false; !again; {
			select {
			case <-ctx.Done():
				return nil
			case <-kick:
				again = true
			case <-synced:
				again = true
			case <-resync.C:
				again = true
			case <-poll.C:
				again = w.ca.BundleVersion() != written
			}
		}
	}
}

// reconcile makes the ConfigMap of each namespace hold the bundle, going
// by what the informer last saw; a write that loses a race fails with a
// Conflict and is made again at the next event or resync.
func (w *bundleWriter) reconcile(ctx context.Context, namespaces []string, cms corelisters.ConfigMapLister) error {
	bundle := string(w.ca.BundlePEM())
	var errs []error
	for _, ns := range namespaces {
		cm, err := cms.ConfigMaps(ns).Get(inject.CABundleConfigMap)
		switch {
		case apierrors.IsNotFound(err):
			cm = &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: inject.CABundleConfigMap, Namespace: ns, Labels: map[string]string{"app.kubernetes.io/part-of": "weft"},
					Annotations: map[string]string{"weft.dev/description": "the mesh's trust bundle, kept by the weft control plane for its proxies"}},
				Data: map[string]string{inject.CABundleKey: bundle},
			}
			_, err = w.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{FieldManager: fieldManager})
			if apierrors.IsAlreadyExists(err) || apierrors.IsNotFound(err) {
				// Made since the informer looked, or the namespace is going.
				err = nil
			}
		case err != nil:
		case cm.Data[inject.CABundleKey] == bundle:
			continue
		default:
			cm = cm.DeepCopy()
			if cm.Data == nil {
				cm.Data = map[string]string{}
			}
			cm.Data[inject.CABundleKey] = bundle
			_, err = w.client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{FieldManager: fieldManager})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("ConfigMap %s/%s: %w", ns, inject.CABundleConfigMap, err))
		}
	}
	return errors.Join(errs...)
}
