// Package kubeenv runs a real Kubernetes control plane for tests: Debian's
// etcd and a kube-apiserver built from k8s.io/kubernetes (make kube-tools
// puts it in .tools/), on loopback ports, with RBAC, admission webhooks,
// CRDs, and service-account tokens that TokenRequest issues and
// TokenReview checks. No kubelet, scheduler or controller manager runs:
// Pods are stored but never run, and a test that needs what a controller
// would do (a namespace's default ServiceAccount, Pod status,
// EndpointSlices) writes it itself.
//
// Start gives a test its own control plane, stopped in t.Cleanup; Shared,
// with RunShared in TestMain, gives a package one that its tests share,
// since each start costs seconds. docs/kubernetes.md says more.
//
// It is for tests only: no package outside tests may import it (it starts
// processes and hands out admin credentials). It imports nothing of weft
// but internal/testutil/ports, so that the tests of any weft package may use
// it without an import cycle; keep it that way.
package kubeenv
