package inject

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/internal/testutil/expand"
)

// TestCommandLinesWeftProxyAccepts builds weft-proxy and holds the
// injected command lines to it: the init step's, run as a dry run (it
// prints the iptables rules instead of installing them), and the
// sidecar's, whose every flag weft-proxy must list. The sidecar itself is
// not run: it would dial the control plane's Service.
func TestCommandLinesWeftProxyAccepts(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	bin := filepath.Join(t.TempDir(), "weft-proxy")
	if out, err := exec.Command(goBin, "build", "-o", bin, "../../cmd/weft-proxy").CombinedOutput(); err != nil {
		t.Fatalf("building weft-proxy: %v\n%s", err, out)
	}
	o := testOptions()
	o.IPv6 = true
	in := testPod(map[string]string{SkipInboundPortsAnnotation: "9090", SkipOutboundPortsAnnotation: "5432,3306"}, nil)
	// An HTTP probe, moved onto the admin port, gives the sidecar --app-probes.
	in.Spec.Containers[0].ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready?v=$(POD_IP)", Port: intstr.FromInt32(8080)}}}
	pod, _, err := Pod(in, map[string]string{InjectKey: Enabled}, o)
	if err != nil {
		t.Fatal(err)
	}
	var initC, proxy corev1.Container
	for _, c := range pod.Spec.InitContainers {
		switch c.Name {
		case InitContainerName:
			initC = c
		case ProxyContainerName:
			proxy = c
		}
	}

	out, err := exec.Command(bin, append(initC.Args, "--dry-run")...).CombinedOutput()
	if err != nil {
		t.Fatalf("weft-proxy %s --dry-run: %v\n%s", strings.Join(initC.Args, " "), err, out)
	}
	for _, want := range []string{"--dport 4143", "--dport 15100", "--dport 9090", "--dport 5432", "--uid-owner 2102", "--to-ports 15006", "--to-ports 15001", "(IPv6)"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the init step's rules lack %q:\n%s", want, out)
		}
	}

	// The sidecar's flags parse, once the kubelet has expanded them: with
	// a token file that is not there, it must get as far as reading it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{"POD_NAMESPACE": "shop", "POD_NAME": "web-0", "POD_IP": "198.18.0.9"}
	var args []string
	for _, a := range proxy.Args {
		if strings.HasPrefix(a, "--token-file=") {
			a = "--token-file=/nonexistent"
		}
		args = append(args, expand.Expand(a, vars))
	}
	out, _ = exec.CommandContext(ctx, bin, append(args, "--admin=127.0.0.1:0")...).CombinedOutput()
	if !strings.Contains(string(out), "--token-file: open /nonexistent") {
		t.Errorf("weft-proxy %s did not get as far as its token file:\n%s", strings.Join(args, " "), out)
	}
	usage, _ := exec.Command(bin, "-h").CombinedOutput()
	for _, arg := range proxy.Args {
		name, _, _ := strings.Cut(strings.TrimPrefix(arg, "--"), "=")
		if !strings.Contains(string(usage), "\n  -"+name+" ") && !strings.Contains(string(usage), "\n  -"+name+"\n") {
			t.Errorf("weft-proxy has no flag --%s (usage:\n%s)", name, usage)
		}
	}
}
