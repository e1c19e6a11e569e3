package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/weftmesh/weft/internal/model"
)

func meshedPod(edit func(*corev1.Pod)) *corev1.Pod {
	always := corev1.ContainerRestartPolicyAlways
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "catalog-7f9c-x2", Namespace: "shop", Labels: map[string]string{"app": "catalog"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "catalog",
			InitContainers: []corev1.Container{{Name: ProxyContainer, RestartPolicy: &always,
				Ports: []corev1.ContainerPort{{Name: ProxyInboundPortName, ContainerPort: 4143}, {Name: ProxyAdminPortName, ContainerPort: 4191}}}},
			Containers: []corev1.Container{{Name: "app", Ports: []corev1.ContainerPort{
				{Name: "http", ContainerPort: 8080},
				{Name: "grpc-admin", ContainerPort: 9090},
				{Name: "metrics", ContainerPort: 9100},
				{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
			}}},
		},
		Status: corev1.PodStatus{PodIP: "198.18.4.7", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	if edit != nil {
		edit(p)
	}
	return p
}

func TestWorkloadFromPod(t *testing.T) {
	w, err := WorkloadFromPod(meshedPod(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &model.Workload{
		Ref: model.Ref{Namespace: "shop", Name: "catalog-7f9c-x2"}, Labels: map[string]string{"app": "catalog"},
		ServiceAccount: "catalog", Address: "198.18.4.7", InboundPort: 4143, AdminPort: 4191,
		Ports: []model.WorkloadPort{
			{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP1},
			{Name: "grpc-admin", Port: 9090, Protocol: model.ProtocolGRPC},
			{Name: "metrics", Port: 9100},
		},
	}
	if !w.Equal(want) {
		t.Errorf("workload\n got %+v\nwant %+v", w, want)
	}

	tests := []struct {
		desc    string
		edit    func(*corev1.Pod)
		check   func(*model.Workload) bool
		wantErr string
	}{
		{"not ready: kept out of endpoints, but its proxy gets its config", func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse },
			func(w *model.Workload) bool { return w.NotReady }, ""},
		{"proxy ports by name, defaults otherwise", func(p *corev1.Pod) { p.Spec.InitContainers[0].Ports = nil },
			func(w *model.Workload) bool {
				return w.InboundPort == DefaultProxyInboundPort && w.AdminPort == DefaultProxyAdminPort
			}, ""},
		{"a sidecar among the containers", func(p *corev1.Pod) {
			p.Spec.Containers = append(p.Spec.Containers, p.Spec.InitContainers[0])
			p.Spec.InitContainers = nil
		}, func(w *model.Workload) bool { return len(w.Ports) == 3 }, ""},
		{"not meshed", func(p *corev1.Pod) { p.Spec.InitContainers = nil }, nil, "no weft-proxy container"},
		{"no IP yet", func(p *corev1.Pod) { p.Status.PodIP = "" }, nil, "status.podIP: not assigned yet"},
		{"bad proxy port", func(p *corev1.Pod) { p.Spec.InitContainers[0].Ports[0].ContainerPort = 0 }, nil, "containers[weft-proxy].ports[0].containerPort"},
		{"an app port on the proxy's", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 4143 }, nil, "4143"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			w, err := WorkloadFromPod(meshedPod(tc.edit))
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case !tc.check(w):
				t.Errorf("workload %+v", w)
			}
		})
	}
	if !IsMeshedPod(meshedPod(nil)) || IsMeshedPod(meshedPod(func(p *corev1.Pod) { p.Spec.InitContainers = nil })) {
		t.Error("IsMeshedPod")
	}
}
