package controlplane

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/identity"
	"github.com/weftmesh/weft/internal/identity/issuer"
	"github.com/weftmesh/weft/internal/inject"
	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/proxy/control"
	"github.com/weftmesh/weft/internal/source/kube"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
	"github.com/weftmesh/weft/internal/testutil/tlstest"
)

func TestMain(m *testing.M) { os.Exit(kubeenv.RunShared(m)) }

// TestKubernetesMode: a control plane reading a real API server serves
// its Services and meshed Pods, and certifies a proxy that presents its
// service account's token for audience weft, as whom the API server says;
// a token for another audience gets nothing.
func TestKubernetesMode(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	ns := "kmode"
	env.CreateNamespace(t, ns, map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(t.Context(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "catalog"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "catalog"}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "catalog"},
		Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
	}}
	if _, err := c.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	always := corev1.ContainerRestartPolicyAlways
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "catalog-0", Labels: map[string]string{"app": "catalog"}}, Spec: corev1.PodSpec{
		ServiceAccountName: "catalog",
		InitContainers:     []corev1.Container{{Name: "weft-proxy", Image: "weft-proxy", RestartPolicy: &always}},
		Containers:         []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
	}}
	created, err := c.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "198.18.20.4",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if _, err := c.CoreV1().Pods(ns).UpdateStatus(t.Context(), created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// What the EndpointSlice controller would write: the Pod is ready.
	if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "catalog-1", Labels: map[string]string{discoveryv1.LabelServiceName: "catalog"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"198.18.20.4"}, Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "catalog-0"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cp := runControlPlane(t, Options{Kube: env.AdminConfig(), StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	var endpoints string
	for _, s := range cp.Services() {
		if s.Name == ns+"/catalog" {
			for _, e := range s.Endpoints {
				endpoints += e.Workload + "@" + e.Address + " as " + e.Identity
			}
		}
	}
	if want := fmt.Sprintf("%s/catalog-0@198.18.20.4:4143 as %s/catalog", ns, ns); endpoints != want {
		t.Fatalf("catalog's endpoints %q, want %q", endpoints, want)
	}

	der, _ := issuer.BundleDER(cp.ca)
	var roots []*x509.Certificate
	for _, d := range der {
		cert, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, cert)
	}
	saToken := func(audience string) string {
		t.Helper()
		tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(t.Context(), "catalog", &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return tr.Status.Token
	}
	td := spiffeid.RequireTrustDomainFromString(cp.TrustDomain())
	want, _ := identity.WorkloadID(td, ns, "catalog")
	trust, err := control.NewTrustFromRoots(td, roots, saToken("weft"))
	if err != nil {
		t.Fatal(err)
	}
	src := identity.NewSource(want, control.NewCertifier(cp.GRPCAddr(), trust), nil)
	trust.Bind(src)
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	go src.Run(sctx)
	select {
	case <-src.Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("no SVID for a service account token within 20s")
	}

	// A token for another audience proves nothing to weft.
	other, err := control.NewTrustFromRoots(td, roots, saToken("vault"))
	if err != nil {
		t.Fatal(err)
	}
	err = certify(t, cp, other, newCSR(t), saToken("vault"))
	if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "service account token") {
		t.Fatalf("certify with a token for another audience: %v, want Unauthenticated", err)
	}
}

func TestServiceAccountOf(t *testing.T) {
	for _, tc := range []struct{ user, ns, name string }{
		{"system:serviceaccount:shop:catalog", "shop", "catalog"},
		{"system:serviceaccount:shop:", "", ""},
		{"system:serviceaccount:shop:a:b", "", ""},
		{"alice", "", ""},
		{"system:node:n1", "", ""},
	} {
		ns, name, err := serviceAccountOf(tc.user)
		if ns != tc.ns || name != tc.name || (err == nil) != (tc.ns != "") {
			t.Errorf("serviceAccountOf(%q) = %q, %q, %v", tc.user, ns, name, err)
		}
	}
}

// TestInjectionWebhook: the API server calls the control plane's webhook
// for a Pod created in a namespace that opted in, and stores it meshed; a
// Pod with a bad weft annotation is refused, saying which; a namespace
// that did not opt in is not touched.
func TestInjectionWebhook(t *testing.T) {
	env := kubeenv.Shared(t)
	c := env.Client(t)
	certDir := t.TempDir()
	cert := tlstest.SelfSigned(t, net.IPv4(127, 0, 0, 1))
	for name, data := range map[string][]byte{"tls.crt": cert.CertPEM, "tls.key": cert.KeyPEM} {
		if err := os.WriteFile(filepath.Join(certDir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caBundle := cert.CertPEM
	cp := runControlPlane(t, Options{Kube: env.AdminConfig(), StateDir: t.TempDir(), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		Webhook: &WebhookOptions{Addr: "127.0.0.1:0", CertDir: certDir,
			Inject: inject.Options{ProxyImage: "weft-proxy:test", ControlPlane: "weft-control-plane.weft-system.svc:15010"}}})

	webhookFor(t, "weft-inject-test", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled}, "https://"+cp.WebhookAddr()+"/inject", caBundle)
	env.CreateNamespace(t, "injected", map[string]string{kube.NamespaceLabel: kube.NamespaceEnabled})
	env.CreateNamespace(t, "untouched", nil)
	app := func(annotations map[string]string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app", Annotations: annotations}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}},
		}}
	}
	initNames := func(p *corev1.Pod) string {
		var names []string
		for _, ic := range p.Spec.InitContainers {
			names = append(names, ic.Name)
		}
		return strings.Join(names, ",")
	}
	// The webhook starts serving with the control plane; the API server
	// may try it a moment before.
	var meshed *corev1.Pod
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for {
		meshed, err = c.CoreV1().Pods("injected").Create(t.Context(), app(nil), metav1.CreateOptions{})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("creating a Pod in a meshed namespace: %v", err)
	}
	if got := initNames(meshed); got != "weft-init,weft-proxy" {
		t.Errorf("stored Pod's init containers %q, want weft-init,weft-proxy", got)
	}
	if !manifest.IsMeshedPod(meshed) {
		t.Error("the injected Pod is not one the kube source takes as meshed")
	}
	_, err = c.CoreV1().Pods("injected").Create(t.Context(), app(map[string]string{inject.SkipInboundPortsAnnotation: "eighty"}), metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), inject.SkipInboundPortsAnnotation) {
		t.Errorf("a Pod with a bad %s: %v, want refused naming it", inject.SkipInboundPortsAnnotation, err)
	}
	plain, err := c.CoreV1().Pods("untouched").Create(t.Context(), app(nil), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := initNames(plain); got != "" {
		t.Errorf("a Pod of a namespace outside the mesh got init containers %q", got)
	}
}
