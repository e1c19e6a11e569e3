package controlplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"

	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/source/kube"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
	"github.com/weftmesh/weft/internal/testutil/tlstest"
)

// TestInjectionFailedEvent: a Pod the webhook cannot mesh (a bad weft
// annotation) is refused under failure policy Fail and let in unmeshed
// under Ignore, and either way an Event InjectionFailed says why, about
// the Pod's controller when it has one, else about its namespace.
func TestInjectionFailedEvent(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	cert := tlstest.SelfSigned(t, net.IPv4(127, 0, 0, 1))
	certDir := t.TempDir()
	for name, data := range map[string][]byte{"tls.crt": cert.CertPEM, "tls.key": cert.KeyPEM} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bad := map[string]string{inject.SkipInboundPortsAnnotation: "eighty"}
	for _, tc := range []struct {
		policy  admissionregistrationv1.FailurePolicyType
		owned   bool
		refused bool
	}{
		{admissionregistrationv1.Fail, false, true},
		{admissionregistrationv1.Fail, true, true},
		{admissionregistrationv1.Ignore, false, false},
		{admissionregistrationv1.Ignore, true, false},
	} {
		name := fmt.Sprintf("%s-owned-%v", tc.policy, tc.owned)
		t.Run(name, func(t *testing.T) {
			ns := strings.ToLower(name)
			env.CreateNamespace(t, ns, map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
			cp := runControlPlane(t, Options{Kube: env.AdminConfig(), StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
				Webhook: &WebhookOptions{Addr: "127.0.0.1:0", CertDir: certDir, FailurePolicy: tc.policy,
					Inject: inject.Options{ProxyImage: "weft-proxy:test", ControlPlane: "weft-control-plane.weft-system.svc:15010"}}})
			webhookFor(t, "weft-inject-"+ns, map[string]string{corev1.LabelMetadataName: ns}, "https://"+cp.WebhookAddr()+"/inject", cert.CertPEM)

			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: bad}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "app", Image: "app"}}}}
			subject := corev1.ObjectReference{Kind: "Namespace", Name: ns}
			eventNS := metav1.NamespaceDefault // where Events about cluster-scoped objects go
			if tc.owned {
				p.OwnerReferences = []metav1.OwnerReference{
					{APIVersion: "v1", Kind: "ConfigMap", Name: "not-the-controller", UID: types.UID("uid-1")},
					{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "app-5d8f", UID: types.UID("uid-2"), Controller: new(true)}}
				subject, eventNS = corev1.ObjectReference{Kind: "ReplicaSet", Name: "app-5d8f", Namespace: ns}, ns
			}
			// The API server may call the webhook a moment before it serves.
			var created *corev1.Pod
			var err error
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
				created, err = c.CoreV1().Pods(ns).Create(t.Context(), p, metav1.CreateOptions{})
				if err == nil || strings.Contains(err.Error(), inject.SkipInboundPortsAnnotation) || time.Now().After(deadline) {
					break
				}
			}
			// A dry run gets the same answer and leaves no Event: the
			// webhook declares no side effects.
			dry := p.DeepCopy()
			dry.Name = "dry-run"
			_, dryErr := c.CoreV1().Pods(ns).Create(t.Context(), dry, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if tc.refused != (dryErr != nil) {
				t.Errorf("dry run: %v, want refused %v", dryErr, tc.refused)
			}
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), inject.SkipInboundPortsAnnotation)):
				t.Fatalf("create: %v, want refused naming %s", err, inject.SkipInboundPortsAnnotation)
			case !tc.refused && err != nil:
				t.Fatalf("create: %v, want let in", err)
			case !tc.refused && len(created.Spec.InitContainers) != 0:
				t.Fatalf("the Pod let in has init containers %v, want it unmeshed", created.Spec.InitContainers)
			}

			selector := fields.Set{"reason": InjectionFailedReason, "involvedObject.kind": subject.Kind, "involvedObject.name": subject.Name}
			waitFor(t, "an InjectionFailed Event", func() error {
				list, err := c.CoreV1().Events(eventNS).List(t.Context(), metav1.ListOptions{FieldSelector: selector.AsSelector().String()})
				if err != nil {
					return err
				}
				for _, e := range list.Items {
					if strings.Contains(e.Message, dry.Name) {
						t.Fatalf("the dry run left an Event: %s", e.Message)
					}
				}
				for _, e := range list.Items {
					if e.Type == corev1.EventTypeWarning && strings.Contains(e.Message, inject.SkipInboundPortsAnnotation) &&
						strings.Contains(e.Message, string(tc.policy)) && e.InvolvedObject.Namespace == subject.Namespace {
						return nil
					}
				}
				return fmt.Errorf("events %v", list.Items)
			})
		})
	}
}

// webhookFor registers a webhook configuration, name, that sends the Pods
// of the namespaces whose labels match to url, and removes it when t ends.
func webhookFor(t *testing.T, name string, namespaces map[string]string, url string, caBundle []byte) {
	t.Helper()
	c := kubeenv.Shared(t).Client(t)
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "inject.weft.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caBundle},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &fail,
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: namespaces},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
		}},
	}
	if _, err := c.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), cfg.Name, metav1.DeleteOptions{})
	})
}
