//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/weftmesh/weft/internal/testutil/expand"
	"github.com/weftmesh/weft/internal/testutil/kubeenv"
	netnsutil "github.com/weftmesh/weft/internal/testutil/netns"
	"github.com/weftmesh/weft/internal/testutil/tcpserver"
)

// Kubernetes mode end to end: a real API server (kubeenv) takes weft
// install's output as it is; the control plane runs as its Deployment
// would, authenticated as its own ServiceAccount (so the rendered RBAC is
// what is tested), in a network namespace the API server reaches through
// the webhook Service's EndpointSlice; Pods are created through the API
// and mutated by the real admission flow; and the test plays the kubelet
// (network namespace, weft-init's rules, the sidecar as its user with its
// projected token, Pod status) and the endpoint-slice controller.
//
//	root netns:   198.18.0.254 on a veth to the bridge: the API server's
//	              way to the webhook, and the test's to admin ports
//	netns hub:    the bridge, nothing else
//	netns cp:     198.18.0.2, weft control
//	netns <pod>:  198.18.0.10+, one per Pod: weft-init's rules, weft-proxy
//	              as the sidecar's user, the app
//
// Cluster IPs (kubeenv.ServiceCIDR) are routed onto the bridge in every
// pod, where nothing answers them: only the proxy's interception carries
// them. No namespace but root has a route off the bridge.

const (
	kubeMeshNS   = "shop"
	kubeCPNS     = "weft-system"
	kubeCPIP     = "198.18.0.2"
	kubeRootIP   = "198.18.0.254"
	kubeAppPort  = 8080
	kubeAPIPort  = 6443 // the API server as the control plane's netns sees it
	fieldManager = "weft-e2e"
)

// kubeCluster is what the test plays of a cluster around kubeenv.
type kubeCluster struct {
	t           *testing.T
	env         *kubeenv.Env
	c           kubernetes.Interface
	dyn         dynamic.Interface
	mapper      *restmapper.DeferredDiscoveryRESTMapper
	base        string // 0755: binaries and volumes the pods' users must reach
	weft        string
	proxy       string
	hub         *netns
	nextIP      int
	http        *http.Client
	mu          sync.Mutex
	workarounds []string // what the test had to do that a cluster would not
}

func (k *kubeCluster) workaround(format string, args ...any) {
	k.mu.Lock()
	defer k.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if !slices.Contains(k.workarounds, msg) {
		k.workarounds = append(k.workarounds, msg)
	}
}

func newKubeCluster(t *testing.T) *kubeCluster {
	netnsutil.Require(t, "iptables-restore", "iptables-save", "curl", "setpriv")
	bins := binDir(t)
	env := kubeenv.Start(t)
	base, err := os.MkdirTemp("", "weft-kube-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// The sidecar's and the control plane's users must reach what the
	// kubelet would have put in their containers.
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	k := &kubeCluster{t: t, env: env, c: env.Client(t), dyn: env.Dynamic(t), base: base, nextIP: 10,
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	k.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(k.c.Discovery()))
	for _, b := range []string{"weft", "weft-proxy"} {
		netnsutil.Run(t, "cp", filepath.Join(bins, b), filepath.Join(base, b))
		os.Chmod(filepath.Join(base, b), 0o755)
	}
	k.weft, k.proxy = filepath.Join(base, "weft"), filepath.Join(base, "weft-proxy")

	k.hub = newNetns(t, "kube-hub")
	k.hub.IP("link", "add", "br0", "type", "bridge")
	k.hub.IP("link", "set", "br0", "up")
	// The root namespace's leg: the API server calls the webhook, and the
	// test reads admin ports, over it. Deleting the hub deletes it.
	rootLeg := fmt.Sprintf("wk%d", os.Getpid())
	netnsutil.Run(t, "ip", "link", "add", rootLeg, "type", "veth", "peer", "name", "root", "netns", k.hub.Name)
	k.hub.IP("link", "set", "root", "master", "br0")
	k.hub.IP("link", "set", "root", "up")
	netnsutil.Run(t, "ip", "addr", "add", kubeRootIP+"/24", "dev", rootLeg)
	netnsutil.Run(t, "ip", "link", "set", rootLeg, "up")
	return k
}

// podNetns makes a pod's network namespace on the bridge with ip, and a
// hosts file that `ip netns exec` mounts over /etc/hosts in it.
func (k *kubeCluster) podNetns(role, ip string, hosts map[string]string) *netns {
	k.t.Helper()
	n := newNetns(k.t, role)
	veth := fmt.Sprintf("v%d", net.ParseIP(ip).To4()[3])
	k.hub.IP("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", n.Name)
	k.hub.IP("link", "set", veth, "master", "br0")
	k.hub.IP("link", "set", veth, "up")
	n.IP("addr", "add", ip+"/24", "dev", "eth0")
	n.IP("link", "set", "eth0", "up")
	n.IP("route", "add", kubeenv.ServiceCIDR, "dev", "eth0")
	_, err := os.Stat("/etc/netns")
	madeEtcNetns := errors.Is(err, fs.ErrNotExist)
	dir := filepath.Join("/etc/netns", n.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		k.t.Fatal(err)
	}
	k.t.Cleanup(func() {
		os.RemoveAll(dir)
		if madeEtcNetns {
			os.Remove("/etc/netns") // fails, rightly, if another test keeps files there
		}
	})
	var b strings.Builder
	b.WriteString("127.0.0.1 localhost\n")
	for name, addr := range hosts {
		fmt.Fprintf(&b, "%s %s\n", addr, name)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(b.String()), 0o644); err != nil {
		k.t.Fatal(err)
	}
	return n
}

// startAs runs bin in n as uid through `ip netns exec`, so the namespace's
// /etc/netns hosts file is its /etc/hosts, until the test ends.
func (k *kubeCluster) startAs(n *netns, name string, uid int64, env []string, bin string, args ...string) *process {
	k.t.Helper()
	argv := []string{"netns", "exec", n.Name}
	if uid != 0 {
		id := strconv.FormatInt(uid, 10)
		// A change of user clears the parent-death signal: set it again,
		// so the process dies with the test binary as the others do.
		argv = append(argv, "setpriv", "--reuid="+id, "--regid="+id, "--clear-groups", "--pdeathsig=SIGKILL", "--")
	}
	cmd := exec.Command("ip", append(append(argv, bin), args...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return runProcess(k.t, name, n.Name, cmd, cmd.Start)
}

// decodeYAML splits a multi-document YAML stream into objects.
func decodeYAML(t *testing.T, doc string) []*unstructured.Unstructured {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(doc), 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw map[string]any
		if err := d.Decode(&raw); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding YAML: %v", err)
		}
		if len(raw) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: raw})
		}
	}
}

// apply applies obj server-side, as kubectl apply --server-side would.
func (k *kubeCluster) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// A CRD applied a moment ago: discovery did not serve it yet.
		k.mapper.Reset()
		m, err = k.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	var r dynamic.ResourceInterface = k.dyn.Resource(m.Resource)
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		r = k.dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	if _, err := r.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("applying %s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
	}
	return nil
}

// applyYAML applies each object of doc, waiting while the kind of a CRD
// just applied is not served yet; any other refusal fails the test.
func (k *kubeCluster) applyYAML(ctx context.Context, doc string) {
	k.t.Helper()
	for _, obj := range decodeYAML(k.t, doc) {
		var refused error
		eventually(k.t, 20*time.Second, "apply "+obj.GetKind()+" "+obj.GetName(), func() error {
			err := k.apply(ctx, obj)
			if meta.IsNoMatchError(err) {
				return err
			}
			refused = err
			return nil
		})
		if refused != nil {
			k.t.Fatal(refused)
		}
	}
}

// tokenFor is a TokenRequest for a ServiceAccount, bound to pod if given.
func (k *kubeCluster) tokenFor(ctx context.Context, ns, sa string, audiences []string, seconds int64, pod *corev1.Pod) string {
	k.t.Helper()
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &seconds}}
	if pod != nil {
		req.Spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
	}
	tr, err := k.c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		k.t.Fatalf("TokenRequest for %s/%s: %v", ns, sa, err)
	}
	return tr.Status.Token
}

// kubeletFile writes a file of a volume, readable by the container's user
// (the kubelet's default mode, 0644).
func kubeletFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// volumes makes on disk, as the kubelet would, the volumes container
// mounts, and returns each mount path's directory. uid owns emptyDirs.
func (k *kubeCluster) volumes(ctx context.Context, pod *corev1.Pod, volumes []corev1.Volume, mounts []corev1.VolumeMount, uid int64) map[string]string {
	k.t.Helper()
	dirs := map[string]string{}
	for _, m := range mounts {
		i := slices.IndexFunc(volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			k.t.Fatalf("%s/%s mounts volume %s, which it lacks", pod.Namespace, pod.Name, m.Name)
		}
		v := volumes[i]
		dir, err := os.MkdirTemp(k.base, pod.Name+"-"+v.Name+"-")
		if err != nil {
			k.t.Fatal(err)
		}
		os.Chmod(dir, 0o755)
		switch {
		case v.EmptyDir != nil:
			os.Chown(dir, int(uid), int(uid))
		case v.Secret != nil:
			s, err := k.c.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				k.t.Fatalf("volume %s of %s: %v", v.Name, pod.Name, err)
			}
			for key, data := range s.Data {
				kubeletFile(k.t, dir, key, data)
			}
		case v.ConfigMap != nil:
			for key, data := range k.configMap(ctx, pod.Namespace, v.ConfigMap.Name, v.ConfigMap.Items) {
				kubeletFile(k.t, dir, key, data)
			}
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					st := src.ServiceAccountToken
					seconds := int64(3600)
					if st.ExpirationSeconds != nil {
						seconds = *st.ExpirationSeconds
					}
					var aud []string
					if st.Audience != "" {
						aud = []string{st.Audience}
					}
					kubeletFile(k.t, dir, st.Path, []byte(k.tokenFor(ctx, pod.Namespace, pod.Spec.ServiceAccountName, aud, seconds, pod)))
				case src.ConfigMap != nil:
					for key, data := range k.configMap(ctx, pod.Namespace, src.ConfigMap.Name, src.ConfigMap.Items) {
						kubeletFile(k.t, dir, key, data)
					}
				case src.DownwardAPI != nil:
					for _, it := range src.DownwardAPI.Items {
						if it.FieldRef == nil {
							k.t.Fatalf("volume %s of %s: a downward API item this test does not play: %+v", v.Name, pod.Name, it)
						}
						kubeletFile(k.t, dir, it.Path, []byte(podField(pod, it.FieldRef.FieldPath)))
					}
				default:
					k.t.Fatalf("volume %s of %s: a projection this test does not play: %+v", v.Name, pod.Name, src)
				}
			}
		default:
			k.t.Fatalf("volume %s of %s: a kind this test does not play", v.Name, pod.Name)
		}
		dirs[m.MountPath] = dir
	}
	return dirs
}

// configMap waits for a ConfigMap, as a kubelet holds a Pod whose
// ConfigMap volume is missing, and returns the files it projects.
func (k *kubeCluster) configMap(ctx context.Context, ns, name string, items []corev1.KeyToPath) map[string][]byte {
	k.t.Helper()
	var cm *corev1.ConfigMap
	eventually(k.t, 20*time.Second, "ConfigMap "+ns+"/"+name+" a Pod mounts", func() (err error) {
		cm, err = k.c.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		return err
	})
	files := map[string][]byte{}
	for key, v := range cm.Data {
		files[key] = []byte(v)
	}
	for key, v := range cm.BinaryData {
		files[key] = v
	}
	if len(items) == 0 {
		return files
	}
	out := map[string][]byte{}
	for _, it := range items {
		out[it.Path] = files[it.Key]
	}
	return out
}

// containerArgs is what the kubelet runs for c: its env (Downward API
// fields resolved), its command line with $(VAR) expanded and, since the
// test cannot mount, paths under a mount rewritten to the volume's
// directory. The image's entrypoint is bin.
func containerArgs(pod *corev1.Pod, c corev1.Container, mounts map[string]string) (env, args []string) {
	vars := map[string]string{}
	for _, e := range c.Env {
		v := e.Value
		if f := e.ValueFrom; f != nil && f.FieldRef != nil {
			v = podField(pod, f.FieldRef.FieldPath)
		}
		vars[e.Name] = v
		env = append(env, e.Name+"="+v)
	}
	// Longest first: a mount may lie inside another.
	paths := slices.Collect(maps.Keys(mounts))
	slices.SortFunc(paths, func(a, b string) int { return len(b) - len(a) })
	cmd := append(slices.Clone(c.Command), c.Args...)
	if len(c.Command) > 0 {
		cmd = cmd[1:] // the entrypoint, which the caller runs
	}
	for _, a := range cmd {
		a = expand.Expand(a, vars)
		for _, path := range paths {
			a = strings.ReplaceAll(a, path, mounts[path])
		}
		args = append(args, a)
	}
	return env, args
}

// podField is a field of pod as the Downward API gives it.
func podField(pod *corev1.Pod, path string) string {
	switch path {
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	case "metadata.uid":
		return string(pod.UID)
	case "status.podIP":
		return pod.Status.PodIP
	case "status.hostIP":
		return pod.Status.HostIP
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName
	}
	panic("the test plays no Downward API field " + path)
}

// writeStatus writes what the kubelet reports of a running Pod.
func (k *kubeCluster) writeStatus(ctx context.Context, pod *corev1.Pod, ip string, ready bool) *corev1.Pod {
	k.t.Helper()
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	now := metav1.Now()
	var out *corev1.Pod
	eventually(k.t, 10*time.Second, "status of "+pod.Name, func() error {
		cur, err := k.c.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.Status.Phase = corev1.PodRunning
		cur.Status.PodIP, cur.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		cur.Status.HostIP = kubeRootIP
		cur.Status.StartTime = &now
		cur.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: cond, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: cond, LastTransitionTime: now},
		}
		out, err = k.c.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	return out
}

// endpointSlice writes the EndpointSlice of svc as the endpoint-slice
// controller would: the ready addresses of what it selects, its ports by
// name with their target ports resolved against containers' ports.
func (k *kubeCluster) endpointSlice(ctx context.Context, svc *corev1.Service, pods []*corev1.Pod, ports []corev1.ContainerPort) {
	k.t.Helper()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc.Name + "-e2e", Namespace: svc.Namespace,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "endpointslice-controller.k8s.io"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Service", Name: svc.Name, UID: svc.UID,
				Controller: ptrTo(true), BlockOwnerDeletion: ptrTo(true)}},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range pods {
		ep := discoveryv1.Endpoint{Addresses: []string{p.Status.PodIP},
			Conditions: discoveryv1.EndpointConditions{Ready: ptrTo(true), Serving: ptrTo(true), Terminating: ptrTo(false)}}
		if p.UID != "" { // a stored Pod
			ep.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: p.Namespace, Name: p.Name, UID: p.UID}
		}
		slice.Endpoints = append(slice.Endpoints, ep)
	}
	for _, sp := range svc.Spec.Ports {
		port := sp.TargetPort.IntVal
		if sp.TargetPort.Type == intstr.String {
			i := slices.IndexFunc(ports, func(cp corev1.ContainerPort) bool { return cp.Name == sp.TargetPort.StrVal })
			if i < 0 {
				k.t.Fatalf("service %s port %s: target port %q names no container port", svc.Name, sp.Name, sp.TargetPort.StrVal)
			}
			port = ports[i].ContainerPort
		}
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: ptrTo(sp.Name), Port: ptrTo(port), Protocol: ptrTo(corev1.ProtocolTCP), AppProtocol: sp.AppProtocol})
	}
	_, err := k.c.DiscoveryV1().EndpointSlices(svc.Namespace).Create(ctx, slice, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := k.c.DiscoveryV1().EndpointSlices(svc.Namespace).Get(ctx, slice.Name, metav1.GetOptions{})
		if gerr != nil {
			k.t.Fatal(gerr)
		}
		slice.ResourceVersion = cur.ResourceVersion
		_, err = k.c.DiscoveryV1().EndpointSlices(svc.Namespace).Update(ctx, slice, metav1.UpdateOptions{})
	}
	if err != nil {
		k.t.Fatalf("EndpointSlice of %s/%s: %v", svc.Namespace, svc.Name, err)
	}
}

func ptrTo[T any](v T) *T { return &v }

// get reads url from the root namespace, over the bridge.
func (k *kubeCluster) get(url string) (string, error) {
	resp, err := k.http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// runControlPlane runs weft control as the applied Deployment's
// container, in the control plane's netns as its user, with a kubeconfig
// holding its ServiceAccount's token, and makes the API server reach it
// through the Service: an EndpointSlice with its address.
func (k *kubeCluster) runControlPlane(ctx context.Context) {
	t := k.t
	t.Helper()
	dep, err := k.c.AppsV1().Deployments(kubeCPNS).Get(ctx, "weft-control-plane", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the applied Deployment: %v", err)
	}
	// The Pod the ReplicaSet would make (nothing stores it: no controller
	// manager runs, and the test needs only its spec and identity).
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "weft-control-plane-e2e-0", Namespace: kubeCPNS, Labels: dep.Spec.Template.Labels},
		Spec: dep.Spec.Template.Spec}
	pod.Status.PodIP = kubeCPIP
	cpNS := k.podNetns("kube-cp", kubeCPIP, nil)

	// The API server, as the Pod would reach it (kubernetes.default.svc):
	// a forwarder on the netns's loopback, whose address the API server's
	// certificate names.
	apiserver := strings.TrimPrefix(k.env.URL, "https://")
	tcpserver.Accept(cpNS.listen(fmt.Sprintf("127.0.0.1:%d", kubeAPIPort)), func(c net.Conn) {
		up, err := net.Dial("tcp", apiserver)
		if err != nil {
			return
		}
		defer up.Close()
		go io.Copy(up, c)
		io.Copy(c, up)
	})

	ctr := pod.Spec.Containers[0]
	uid := int64(0)
	if sc := pod.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	if sc := ctr.SecurityContext; sc != nil && sc.RunAsUser != nil {
		uid = *sc.RunAsUser
	}
	mounts := k.volumes(ctx, pod, pod.Spec.Volumes, ctr.VolumeMounts, uid)
	env, args := containerArgs(pod, ctr, mounts)

	// Its ServiceAccount's token, as the in-cluster config would read it.
	token := k.tokenFor(ctx, kubeCPNS, pod.Spec.ServiceAccountName, nil, 3600, nil)
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["in-cluster"] = &clientcmdapi.Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", kubeAPIPort), CertificateAuthorityData: k.env.CACert}
	cfg.AuthInfos["sa"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["in-cluster"] = &clientcmdapi.Context{Cluster: "in-cluster", AuthInfo: "sa", Namespace: kubeCPNS}
	cfg.CurrentContext = "in-cluster"
	kubeconfig := filepath.Join(k.base, "control-plane.kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, kubeconfig); err != nil {
		t.Fatal(err)
	}
	os.Chown(kubeconfig, int(uid), int(uid))
	args = append(args, "--kubeconfig="+kubeconfig)
	k.workaround("weft control gets --kubeconfig (its ServiceAccount's TokenRequest token; the API server through a forwarder in its netns): in-cluster config reads files at fixed paths the test cannot mount")

	if len(args) == 0 || args[0] != "control" {
		t.Fatalf("the Deployment runs weft %v, want weft control", args)
	}
	t.Logf("weft control %s", strings.Join(args[1:], " "))
	k.startAs(cpNS, "weft control", uid, env, k.weft, args...)

	svc, err := k.c.CoreV1().Services(kubeCPNS).Get(ctx, "weft-control-plane", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	k.endpointSlice(ctx, svc, []*corev1.Pod{pod}, ctr.Ports)
	eventually(t, 30*time.Second, "control plane ready", func() error {
		_, err := k.get("http://" + kubeCPIP + ":15011/ready")
		return err
	})
}

// kubePod is a Pod the test runs.
type kubePod struct {
	pod    *corev1.Pod
	ns     *netns
	ip     string
	seen   atomic.Int64 // requests its app answered
	fail   atomic.Int64 // of which it failed
	probed atomic.Int64 // probes of kubeProbePath its app answered
}

// kubeProbePath is the app's readiness probe.
const kubeProbePath = "/healthz"

// runPod plays the kubelet for an admitted Pod: its network namespace,
// weft-init, the sidecar until ready, the app, then Ready.
func (k *kubeCluster) runPod(ctx context.Context, pod *corev1.Pod, failEveryOther bool) *kubePod {
	t := k.t
	t.Helper()
	ip := fmt.Sprintf("198.18.0.%d", k.nextIP)
	k.nextIP++
	p := &kubePod{ip: ip}
	// Cluster DNS would name the control plane's Service; with no
	// kube-proxy here to carry its cluster IP, the name resolves to its
	// endpoint.
	p.ns = k.podNetns("kube-"+pod.Name, ip, map[string]string{"weft-control-plane." + kubeCPNS + ".svc": kubeCPIP})
	k.workaround("no kube-proxy: weft-control-plane.%s.svc resolves (hosts file) to the control plane's endpoint, not its cluster IP", kubeCPNS)
	pod = k.writeStatus(ctx, pod, ip, false)
	p.pod = pod

	for _, c := range pod.Spec.InitContainers {
		mounts := k.volumes(ctx, pod, pod.Spec.Volumes, c.VolumeMounts, 0)
		env, args := containerArgs(pod, c, mounts)
		if c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
			out, err := p.ns.exec(ctx, k.proxy, args...)
			if err != nil {
				t.Fatalf("init container %s of %s: %v\n%s", c.Name, pod.Name, err, out)
			}
			continue
		}
		uid := *c.SecurityContext.RunAsUser
		k.startAs(p.ns, pod.Name+" "+c.Name, uid, env, k.proxy, args...)
		// Its startup probe: the app starts after.
		eventually(t, 30*time.Second, pod.Name+"'s proxy ready", func() error {
			_, err := k.get("http://" + ip + ":15100/ready")
			return err
		})
	}

	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == kubeProbePath {
			p.probed.Add(1)
			return
		}
		n := p.seen.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if failEveryOther && n%2 == 0 {
			p.fail.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		json.NewEncoder(w).Encode(seen{Server: pod.Name, Host: r.Host, Path: r.URL.Path, Remote: r.RemoteAddr, Header: r.Header})
	})}
	go srv.Serve(p.ns.listen(fmt.Sprintf(":%d", kubeAppPort)))
	t.Cleanup(func() { srv.Close() })
	// Its probes, from the node as the kubelet sends them, to where the
	// admitted pod has them: the injector moved them onto the proxy's
	// admin port, which sends them to the app at the pod's IP.
	ctr := pod.Spec.Containers[0]
	for kind, pr := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
		if pr == nil {
			continue
		}
		eventually(t, 10*time.Second, pod.Name+"'s "+kind+" probe", func() error { return kubeletProbe(k, ctr, ip, pr) })
	}
	p.pod = k.writeStatus(ctx, pod, ip, true)
	return p
}

// kubeletProbe sends probe as the kubelet would, from the node to the
// pod's IP: an HTTP GET that must answer 2xx or 3xx, or a TCP connection
// that must open.
func kubeletProbe(k *kubeCluster, ctr corev1.Container, ip string, probe *corev1.Probe) error {
	resolve := func(port intstr.IntOrString) string {
		for _, cp := range ctr.Ports {
			if port.Type == intstr.String && cp.Name == port.StrVal {
				return strconv.Itoa(int(cp.ContainerPort))
			}
		}
		return port.String()
	}
	switch {
	case probe.HTTPGet != nil:
		_, err := k.get(fmt.Sprintf("http://%s:%s%s", ip, resolve(probe.HTTPGet.Port), probe.HTTPGet.Path))
		return err
	case probe.TCPSocket != nil:
		c, err := net.DialTimeout("tcp", net.JoinHostPort(ip, resolve(probe.TCPSocket.Port)), time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}
	return fmt.Errorf("a probe the test does not send: %+v", probe.ProbeHandler)
}

func kubeAppPod(name, sa string, labels, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeMeshNS, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers: []corev1.Container{{Name: "app", Image: "registry.example/" + labels["app"] + ":1",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: kubeAppPort, Protocol: corev1.ProtocolTCP}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
					Path: kubeProbePath, Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}}},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{
					Port: intstr.FromString("http")}}},
			}},
		},
	}
}

func kubeService(name string, selector map[string]string) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: kubeMeshNS},
		Spec: corev1.ServiceSpec{Selector: selector,
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP}}},
	}
}

const kubeSplitRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: catalog-split, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: catalog, port: 80}]
  rules:
  - backendRefs:
    - {name: catalog-v1, port: 80, weight: 80}
    - {name: catalog-v2, port: 80, weight: 20}
`

// The RetryPolicy attaches to the Service a request goes to: the split's
// backend catalog-v2, whose one Pod fails every other request, so one
// retry (which stays on v2, its only endpoint) always succeeds.
const kubeRetryPolicy = `apiVersion: weft.dev/v1alpha1
kind: RetryPolicy
metadata: {name: catalog-v2-retries, namespace: shop}
spec:
  targetRef: {kind: Service, name: catalog-v2}
  retryOn: [5xx]
  attempts: 3
  backoff: {base: 1ms, max: 10ms}
  budget: {ratio: 1, minPerSecond: 50, window: 10s}
`

func TestKubernetesMode(t *testing.T) {
	started := time.Now()
	k := newKubeCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	defer func() {
		for _, w := range k.workarounds {
			t.Logf("worked around: %s", w)
		}
	}()

	// 1. weft install's output, applied as it is.
	out, err := exec.CommandContext(ctx, k.weft, "install", "--replicas=1", "--image=registry.example/weft:e2e",
		"--proxy-image=registry.example/weft-proxy:e2e").Output()
	if err != nil {
		t.Fatalf("weft install: %v", err)
	}
	k.applyYAML(ctx, string(out))
	// As `kubectl wait --for condition=established` would: the control
	// plane looks for the kinds it reads when it starts, and for those
	// not served yet only every 30s after.
	for _, obj := range decodeYAML(t, string(out)) {
		if obj.GetKind() != "CustomResourceDefinition" {
			continue
		}
		group, _, _ := unstructured.NestedString(obj.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(obj.Object, "spec", "names", "kind")
		eventually(t, 20*time.Second, "the API server serves "+kind+"."+group, func() error {
			k.mapper.Reset()
			_, err := k.mapper.RESTMapping(schema.GroupKind{Group: group, Kind: kind})
			return err
		})
	}
	t.Logf("installed in %s", time.Since(started).Round(time.Millisecond))

	// 2. The control plane, as the Deployment runs it, reached by the API
	// server through its Service.
	k.runControlPlane(ctx)
	t.Logf("control plane up in %s", time.Since(started).Round(time.Millisecond))

	// 3. A meshed namespace, its accounts, Services and Pods, through the
	// API: the real admission flow injects them.
	k.env.CreateNamespace(t, kubeMeshNS, map[string]string{"weft.dev/inject": "enabled"})
	for _, sa := range []string{"web", "catalog"} {
		if _, err := k.c.CoreV1().ServiceAccounts(kubeMeshNS).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The root CA publisher's part: the ConfigMap the ServiceAccount
	// admission plugin's kube-api-access volume projects.
	if _, err := k.c.CoreV1().ConfigMaps(kubeMeshNS).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data: map[string]string{"ca.crt": string(k.env.CACert)}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	services := map[string]*corev1.Service{}
	for _, s := range []*corev1.Service{
		kubeService("web", map[string]string{"app": "web"}),
		kubeService("catalog", map[string]string{"app": "catalog"}),
		kubeService("catalog-v1", map[string]string{"app": "catalog", "version": "v1"}),
		kubeService("catalog-v2", map[string]string{"app": "catalog", "version": "v2"}),
	} {
		created, err := k.c.CoreV1().Services(kubeMeshNS).Create(ctx, s, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating Service %s: %v", s.Name, err)
		}
		if !kubeServiceRange(created.Spec.ClusterIP) {
			t.Fatalf("Service %s got cluster IP %q, want one in %s", s.Name, created.Spec.ClusterIP, kubeenv.ServiceCIDR)
		}
		services[s.Name] = created
	}

	// The API server loads the webhook configuration through an informer:
	// dry runs show when it calls the webhook.
	probe := kubeAppPod("probe", "web", map[string]string{"app": "probe"}, nil)
	eventually(t, 30*time.Second, "the API server calls the injection webhook", func() error {
		p, err := k.c.CoreV1().Pods(kubeMeshNS).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return err
		}
		if len(p.Spec.InitContainers) == 0 {
			return errors.New("a Pod was admitted unmutated")
		}
		return nil
	})

	specs := []*corev1.Pod{
		kubeAppPod("web-0", "web", map[string]string{"app": "web"}, map[string]string{"weft.dev/proxy-log-level": "debug"}),
		kubeAppPod("catalog-v1-0", "catalog", map[string]string{"app": "catalog", "version": "v1"}, map[string]string{"weft.dev/skip-inbound-ports": "9901"}),
		kubeAppPod("catalog-v2-0", "catalog", map[string]string{"app": "catalog", "version": "v2"}, nil),
	}
	admitted := map[string]*corev1.Pod{}
	for _, spec := range specs {
		p, err := k.c.CoreV1().Pods(kubeMeshNS).Create(ctx, spec, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("creating Pod %s: %v", spec.Name, err)
		}
		checkInjected(t, p)
		admitted[p.Name] = p
	}
	if args := initArgs(admitted["catalog-v1-0"], "weft-init"); !slices.Contains(args, "--skip-inbound-ports=9901") {
		t.Errorf("catalog-v1-0's weft-init args %v: the weft.dev/skip-inbound-ports annotation was not honoured", args)
	}
	if args := initArgs(admitted["web-0"], "weft-proxy"); !slices.Contains(args, "--log-level=debug") {
		t.Errorf("web-0's weft-proxy args %v: the weft.dev/proxy-log-level annotation was not honoured", args)
	}

	// 4. The kubelet's part: each Pod runs; then the endpoint-slice
	// controller's.
	pods := map[string]*kubePod{}
	for _, name := range []string{"catalog-v1-0", "catalog-v2-0", "web-0"} {
		pods[name] = k.runPod(ctx, admitted[name], name == "catalog-v2-0")
	}
	// The probes reached each app; the readiness probe sent as the pod
	// declared it, to the app's port in plaintext, never reaches the strict
	// workload's app.
	for name, p := range pods {
		ctr := p.pod.Spec.Containers[0]
		for kind, pr := range map[string]*corev1.Probe{"readiness": ctr.ReadinessProbe, "liveness": ctr.LivenessProbe} {
			if h := pr.HTTPGet; h == nil || h.Port.IntValue() != 15100 || h.Path != "/app-health/app/"+kind {
				t.Errorf("%s's %s probe %+v: want it moved to the proxy's admin port", name, kind, pr.ProbeHandler)
			}
		}
		if p.probed.Load() == 0 {
			t.Errorf("%s's app never saw its readiness probe", name)
		}
	}
	strictPod := pods["catalog-v2-0"]
	before := strictPod.probed.Load()
	if _, err := k.get(fmt.Sprintf("http://%s:%d%s", strictPod.ip, kubeAppPort, kubeProbePath)); err == nil || strictPod.probed.Load() != before {
		t.Errorf("a plaintext probe of catalog-v2-0's app port reached the app (%v): it is strict", err)
	}
	for name, svc := range services {
		var selected []*corev1.Pod
		for _, p := range pods {
			if labelsMatch(svc.Spec.Selector, p.pod.Labels) {
				selected = append(selected, p.pod)
			}
		}
		if len(selected) == 0 {
			t.Fatalf("Service %s selects no Pod", name)
		}
		k.endpointSlice(ctx, svc, selected, pods["web-0"].pod.Spec.Containers[0].Ports)
	}
	t.Logf("pods up in %s", time.Since(started).Round(time.Millisecond))

	// 5. A GAMMA HTTPRoute splitting catalog 80/20, and retries of v2.
	k.applyYAML(ctx, kubeSplitRoute+"---\n"+kubeRetryPolicy)
	web := pods["web-0"]
	catalogURL := "http://" + services["catalog"].Spec.ClusterIP + "/items"
	eventually(t, 20*time.Second, "the route and the retry policy in force", func() error {
		routes, policies := k.weftGet(ctx, "routes"), k.weftGet(ctx, "policies")
		if !inForce(routes, "shop/catalog-split") || !inForce(policies, "shop/catalog-v2-retries") {
			return fmt.Errorf("weft get routes:\n%s\nweft get policies:\n%s", routes, policies)
		}
		return nil
	})
	// In force at the control plane is not yet in web's proxy, whose
	// /config does not show routes: before the split and the retries are
	// both there, v2 takes about half the calls and every other one it
	// takes fails. A run of calls, one of them v2's, all answered, is
	// seen before both are in force about twice in 100,000 tries.
	eventually(t, 20*time.Second, "the split and the retries in web's proxy", func() error {
		answers := k.curlMany(ctx, web, catalogURL, 20)
		v2 := false
		for _, a := range answers {
			if a.code != http.StatusOK {
				return fmt.Errorf("%d from %s", a.code, a.seen.Server)
			}
			v2 = v2 || a.seen.Server == "catalog-v2-0"
		}
		if !v2 {
			return errors.New("no call reached catalog-v2-0")
		}
		return nil
	})
	webID := "spiffe://weft.local/ns/shop/sa/web"
	metricsOf := func(p *kubePod) string {
		t.Helper()
		m, err := k.get("http://" + p.ip + ":15100/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	retriedOfV2 := func() int64 {
		return int64(metric(metricsOf(web), "weft_outbound_retries_total", `service="shop/catalog-v2"`, `outcome="retried"`))
	}
	failed0, retried0 := pods["catalog-v2-0"].fail.Load(), retriedOfV2()
	const n = 1000
	callsStarted := time.Now()
	answers := k.curlMany(ctx, web, catalogURL, n)
	took := time.Since(callsStarted)
	byPod := map[string]int{}
	for _, a := range answers {
		if a.code != http.StatusOK {
			t.Errorf("curl %s from web-0: %d from %s; retries should hide v2's failures", catalogURL, a.code, a.seen.Server)
		}
		byPod[a.seen.Server]++
	}
	v2 := byPod["catalog-v2-0"]
	lo, hi := binomialBounds(n, 0.2)
	failed, retried := pods["catalog-v2-0"].fail.Load()-failed0, retriedOfV2()-retried0
	t.Logf("%d calls in %s: %v (v2's bounds %d..%d); v2's app failed %d, web's proxy retried %d", n, took.Round(time.Millisecond), byPod, lo, hi, failed, retried)
	if byPod["catalog-v1-0"]+v2 != n || v2 < lo || v2 > hi {
		t.Errorf("split %v of %d calls, want catalog-v2-0 within %d..%d and the rest on catalog-v1-0", byPod, n, lo, hi)
	}
	if failed == 0 {
		t.Error("catalog-v2-0 failed no request: the retries were not tested")
	}
	if retried != failed {
		t.Errorf("web's proxy retried %d calls to catalog-v2, whose app failed %d", retried, failed)
	}
	// Every request that ever reached catalog's apps came over mTLS, as
	// web's identity.
	var mtls, plain float64
	arrived := pods["catalog-v1-0"].seen.Load() + pods["catalog-v2-0"].seen.Load()
	for _, name := range []string{"catalog-v1-0", "catalog-v2-0"} {
		m := metricsOf(pods[name])
		mtls += metric(m, "weft_requests_total", `direction="inbound"`, `tls="true"`, `source_identity="`+webID+`"`)
		plain += metric(m, "weft_requests_total", `direction="inbound"`, `tls="false"`)
	}
	t.Logf("catalog's apps answered %d requests, their proxies counted %v over mTLS from %s, %v in plaintext", arrived, mtls, webID, plain)
	if int64(mtls) != arrived || plain != 0 {
		t.Errorf("catalog's apps answered %d requests; their proxies counted %v inbound over mTLS from %s and %v in plaintext", arrived, mtls, webID, plain)
	}

	// What weft made of the policy, written back by the leader.
	if k.grantsStatus(ctx, "weft.dev", "retrypolicies/status") {
		eventually(t, 20*time.Second, "RetryPolicy catalog-v2-retries Accepted", func() error {
			return hasCondition(k.object(ctx, retryPolicies, "catalog-v2-retries"), "Accepted", "True", "")
		})
	} else {
		k.workaround("the rendered ClusterRole grants no update of retrypolicies/status: policy status not checked")
	}

	// 6. Bad input. A bad weft annotation: the webhook refuses the Pod
	// (failurePolicy Fail), naming it.
	bad := kubeAppPod("bad-0", "web", map[string]string{"app": "web"}, map[string]string{"weft.dev/proxy-memory": "lots"})
	if _, err := k.c.CoreV1().Pods(kubeMeshNS).Create(ctx, bad, metav1.CreateOptions{}); err == nil || !strings.Contains(err.Error(), "weft.dev/proxy-memory") {
		t.Errorf("a Pod with weft.dev/proxy-memory: lots: %v, want refused naming the annotation", err)
	}
	// A bare Pod has no controller to hang the Event on: it is about the
	// namespace, and so in default, with the rendered RBAC.
	eventually(t, 10*time.Second, "an InjectionFailed Event about namespace shop", func() error {
		evs, err := k.c.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=InjectionFailed"})
		if err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.InvolvedObject.Kind == "Namespace" && e.InvolvedObject.Name == kubeMeshNS && e.Type == corev1.EventTypeWarning &&
				strings.Contains(e.Message, "bad-0") && strings.Contains(e.Message, "weft.dev/proxy-memory") {
				return nil
			}
		}
		return fmt.Errorf("%d InjectionFailed Events, none about bad-0 naming weft.dev/proxy-memory: %+v", len(evs.Items), evs.Items)
	})
	// An invalid weft policy: CRD validation refuses it, naming the field.
	badPolicy := strings.Replace(strings.Replace(kubeRetryPolicy, "attempts: 3", "attempts: 99", 1), "catalog-v2-retries", "too-many", 1)
	for _, obj := range decodeYAML(t, badPolicy) {
		if err := k.apply(ctx, obj); err == nil || !strings.Contains(err.Error(), "spec.attempts") {
			t.Errorf("a RetryPolicy with attempts 99: %v, want refused naming spec.attempts", err)
		}
	}
	// An HTTPRoute naming a missing backend: reported, and the routing
	// in force stays.
	k.applyYAML(ctx, strings.Replace(kubeSplitRoute, "name: catalog-v2,", "name: catalog-v3,", 1))
	eventually(t, 20*time.Second, "the missing backend reported", func() error {
		out := k.weftGet(ctx, "routes")
		if !strings.Contains(out, "rejected, previous in force") ||
			!strings.Contains(out, "spec.rules[0].backendRefs[1].name: service shop/catalog-v3 does not exist") {
			return fmt.Errorf("weft get routes:\n%s", out)
		}
		return nil
	})
	if p := k.problems(ctx); !strings.Contains(p, "catalog-v3") {
		t.Logf("weft get problems does not list the rejected route (universal mode's does, TestRoutes):\n%s", p)
	}
	if k.grantsStatus(ctx, "gateway.networking.k8s.io", "httproutes/status") {
		eventually(t, 20*time.Second, "the HTTPRoute's status says its backend is missing", func() error {
			parents, _, _ := unstructured.NestedSlice(k.object(ctx, httpRoutes, "catalog-split"), "status", "parents")
			for _, p := range parents {
				p, _ := p.(map[string]any)
				if p["controllerName"] == "weft.dev/mesh" {
					return errors.Join(hasCondition(p, "ResolvedRefs", "False", "BackendNotFound"), hasCondition(p, "Accepted", "False", ""))
				}
			}
			return fmt.Errorf("no status.parents entry of weft.dev/mesh: %v", parents)
		})
	} else {
		k.workaround("the rendered ClusterRole grants no update of httproutes/status: route status is not written back yet, so not checked")
	}
	after := map[string]int{}
	for _, a := range k.curlMany(ctx, web, catalogURL, 50) {
		if a.code != http.StatusOK {
			t.Errorf("after the bad route: %d from %s", a.code, a.seen.Server)
		}
		after[a.seen.Server]++
	}
	if after["catalog-v2-0"] == 0 || after["catalog-v1-0"] == 0 {
		t.Errorf("after the bad route, 50 calls went %v: want the 80/20 split still", after)
	}
	t.Logf("done in %s", time.Since(started).Round(time.Millisecond))
}

// inForce reports whether a weft get table says the object name is in
// force.
func inForce(table, name string) bool {
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == name && strings.Contains(line, " in force ") {
			return true
		}
	}
	return false
}

// problems is what weft get problems says of the control plane.
func (k *kubeCluster) problems(ctx context.Context) string { return k.weftGet(ctx, "problems") }

// weftGet is what weft get says of the control plane's what.
func (k *kubeCluster) weftGet(ctx context.Context, what string) string {
	out, err := exec.CommandContext(ctx, k.weft, "get", what, "--admin", kubeCPIP+":15011").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v: %s", err, out)
	}
	return string(out)
}

var (
	httpRoutes    = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}
	retryPolicies = schema.GroupVersionResource{Group: "weft.dev", Version: "v1alpha1", Resource: "retrypolicies"}
)

// object reads an object of the mesh namespace.
func (k *kubeCluster) object(ctx context.Context, gvr schema.GroupVersionResource, name string) map[string]any {
	k.t.Helper()
	o, err := k.dyn.Resource(gvr).Namespace(kubeMeshNS).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		k.t.Fatalf("reading %s %s: %v", gvr.Resource, name, err)
	}
	return o.Object
}

// hasCondition checks that obj (an object, or one entry of a route's
// status.parents) has the condition typ with status and, unless empty,
// reason.
func hasCondition(obj map[string]any, typ, status, reason string) error {
	conds, _, _ := unstructured.NestedSlice(obj, "conditions")
	if c, ok, _ := unstructured.NestedSlice(obj, "status", "conditions"); ok {
		conds = c
	}
	for _, c := range conds {
		c, _ := c.(map[string]any)
		if c["type"] == typ {
			if c["status"] != status || (reason != "" && c["reason"] != reason) {
				return fmt.Errorf("condition %s: %v, want status %s reason %q", typ, c, status, reason)
			}
			return nil
		}
	}
	return fmt.Errorf("no condition %s in %v", typ, conds)
}

// grantsStatus reports whether the installed ClusterRole lets the control
// plane write a status subresource: then it must.
func (k *kubeCluster) grantsStatus(ctx context.Context, group, resource string) bool {
	roles, err := k.c.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/part-of=weft"})
	if err != nil {
		k.t.Fatal(err)
	}
	for _, r := range roles.Items {
		for _, rule := range r.Rules {
			if grants(rule, group, resource, "update") || grants(rule, group, resource, "patch") {
				return true
			}
		}
	}
	return false
}

func grants(r rbacv1.PolicyRule, group, resource, verb string) bool {
	return slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb)
}

// kubeAnswer is one curl call's.
type kubeAnswer struct {
	code int
	seen seen
}

// curlMany has an unmodified curl in p call url n times, one connection
// reused as any client would, and returns each call's status and body.
func (k *kubeCluster) curlMany(ctx context.Context, p *kubePod, url string, n int) []kubeAnswer {
	k.t.Helper()
	args := []string{"-sS", "--noproxy", "*", "--max-time", "30", "-w", "%{http_code}\n"}
	for range n {
		args = append(args, url)
	}
	out, err := p.ns.exec(ctx, "curl", args...)
	if err != nil {
		k.t.Fatalf("curl from %s: %v\n%s", p.pod.Name, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var answers []kubeAnswer
	for i := 0; i+1 < len(lines); i += 2 {
		var a kubeAnswer
		if err := json.Unmarshal([]byte(lines[i]), &a.seen); err != nil {
			k.t.Fatalf("curl answer %d: %q: %v", len(answers), lines[i], err)
		}
		a.code, _ = strconv.Atoi(lines[i+1])
		answers = append(answers, a)
	}
	if len(answers) != n {
		k.t.Fatalf("curl made %d calls, want %d:\n%s", len(answers), n, out)
	}
	return answers
}

// binomialBounds are 5 standard deviations either side of n*p: a correct
// split falls outside them about once in 1.7 million runs.
func binomialBounds(n int, p float64) (lo, hi int) {
	mean, sd := float64(n)*p, math.Sqrt(float64(n)*p*(1-p))
	return int(math.Floor(mean - 5*sd)), int(math.Ceil(mean + 5*sd))
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

func kubeServiceRange(ip string) bool {
	_, n, _ := net.ParseCIDR(kubeenv.ServiceCIDR)
	return n.Contains(net.ParseIP(ip))
}

func initArgs(p *corev1.Pod, name string) []string {
	for _, c := range p.Spec.InitContainers {
		if c.Name == name {
			return c.Args
		}
	}
	return nil
}

// checkInjected asserts the admission flow meshed p: weft-init, then the
// weft-proxy native sidecar, before its own init containers, and the
// projected token the sidecar proves its identity with.
func checkInjected(t *testing.T, p *corev1.Pod) {
	t.Helper()
	ic := p.Spec.InitContainers
	if len(ic) < 2 || ic[0].Name != "weft-init" || ic[1].Name != "weft-proxy" {
		t.Fatalf("Pod %s was admitted with init containers %v, want weft-init then weft-proxy", p.Name, containerNames(ic))
	}
	if rp := ic[1].RestartPolicy; rp == nil || *rp != corev1.ContainerRestartPolicyAlways {
		t.Errorf("Pod %s: weft-proxy's restartPolicy %v, want Always (a native sidecar)", p.Name, rp)
	}
	if !slices.Contains(ic[0].Args, "init") {
		t.Errorf("Pod %s: weft-init runs %v, want weft-proxy init", p.Name, ic[0].Args)
	}
	sc := ic[1].SecurityContext
	if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("Pod %s: weft-proxy runs as root", p.Name)
	}
	var audience, bundle string
	for _, v := range p.Spec.Volumes {
		if v.ConfigMap != nil {
			bundle = v.ConfigMap.Name
		}
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				audience = s.ServiceAccountToken.Audience
			}
		}
	}
	if audience != "weft" {
		t.Errorf("Pod %s: projected token audience %q, want weft", p.Name, audience)
	}
	// A service account token pins no CA: the proxy trusts the control
	// plane from the bundle its leader publishes.
	if bundle != "weft-ca-bundle" || !slices.ContainsFunc(ic[1].Args, func(a string) bool { return strings.HasPrefix(a, "--ca-file=") }) {
		t.Errorf("Pod %s: ConfigMap volume %q and sidecar args %v, want weft-ca-bundle and --ca-file", p.Name, bundle, ic[1].Args)
	}
}

func containerNames(cs []corev1.Container) []string {
	var names []string
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}
