package kube

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// crdResource lists CRDs. The source watches their names so that a route
// or policy kind is read as soon as its CRD is established (an install
// applies CRDs and starts the control plane together), not at the next
// Rediscover tick.
var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// policyCRDName is the name of the CRD that serves gvr's resource.
func policyCRDName(gvr schema.GroupVersionResource) string { return gvr.Resource + "." + gvr.Group }

// newCRDInformer watches the CRDs of PolicyResources, keeping only their
// names (a CRD's schema can be hundreds of kilobytes), and signals
// changed when one is added or changes: an update is how a new CRD
// becomes established. Without the right to list CRDs it retries quietly,
// and Rediscover still finds new kinds.
func (s *Source) newCRDInformer(changed chan<- struct{}) (cache.SharedIndexInformer, error) {
	inf := dynamicinformer.NewFilteredDynamicInformer(s.opts.Dynamic, crdResource, "", 0, cache.Indexers{}, nil).Informer()
	if err := inf.SetTransform(func(obj any) (any, error) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			return obj, nil
		}
		named := &unstructured.Unstructured{}
		named.SetAPIVersion(u.GetAPIVersion())
		named.SetKind(u.GetKind())
		named.SetName(u.GetName())
		named.SetResourceVersion(u.GetResourceVersion())
		return named, nil
	}); err != nil {
		return nil, err
	}
	if err := inf.SetWatchErrorHandler(func(_ *cache.Reflector, err error) {
		s.opts.Logger.Debug("CRDs not watched; new route and policy kinds are found by polling", "error", err)
	}); err != nil {
		return nil, err
	}
	signal := func(obj any) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok || !isPolicyCRD(u.GetName()) {
			return
		}
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    signal,
		UpdateFunc: func(_, obj any) { signal(obj) },
	})
	return inf, err
}

func isPolicyCRD(name string) bool {
	for _, gvr := range PolicyResources {
		if policyCRDName(gvr) == name {
			return true
		}
	}
	return false
}

// unwatchedCRDs says whether a CRD of a route or policy kind exists that
// the source does not watch yet: one established a moment ago that
// discovery does not list yet.
func (s *Source) unwatchedCRDs(crds cache.Store) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, gvr := range PolicyResources {
		if _, watching := s.watched[gvr]; watching {
			continue
		}
		if _, exists, _ := crds.GetByKey(policyCRDName(gvr)); exists {
			return true
		}
	}
	return false
}

// crdRetries bounds how many times, a second apart, a CRD change makes
// the source look again for a kind discovery does not list yet; one whose
// CRD serves no version weft reads waits for Rediscover.
const crdRetries = 10
