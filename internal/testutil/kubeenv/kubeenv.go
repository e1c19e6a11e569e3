package kubeenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/weftmesh/weft/internal/testutil/ports"
)

const (
	// ServiceCIDR is the API server's --service-cluster-ip-range: inside
	// 198.18.0.0/15, the range weft's network tests may use; the pod
	// addresses a test picks must lie outside it.
	ServiceCIDR = "198.18.128.0/20"
	// Issuer is the iss claim of the service-account tokens it issues.
	Issuer = "https://kubernetes.default.svc.cluster.local"

	// startTimeout bounds one start. The API server is ready in seconds;
	// this leaves room for CI, where go test runs other packages' tests
	// on the same two cores at once.
	startTimeout = 2 * time.Minute
	// attempts is how often a start is tried again with other ports when
	// a port ports.Free handed out was taken before etcd or the API server
	// listened on it.
	attempts = 3
)

// Env is a running etcd and kube-apiserver.
type Env struct {
	// URL is the API server's, https://127.0.0.1:PORT.
	URL string
	// CACert is the PEM of the CA that signed the API server's serving
	// certificate (and every client certificate the Env hands out).
	CACert []byte

	dir       string
	ca        *authority
	admin     *rest.Config
	etcd      *process
	apiserver *process
	stopOnce  sync.Once
	stopErr   error
}

// Start starts etcd and kube-apiserver for t and stops them, removing
// their files, in t.Cleanup. Without etcd or .tools/kube-apiserver it
// skips t, unless in CI (CI=true), where it fails it: CI must run these
// tests, and make test builds and installs both.
func Start(t testing.TB) *Env {
	t.Helper()
	bins := need(t)
	e, err := start(t, bins)
	if e != nil {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("kubeenv: the last output of etcd and kube-apiserver, as the test failed:\n%s", e.tails())
			}
			if err := e.Stop(); err != nil {
				t.Errorf("kubeenv: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	return e
}

// shared is the package's one Env under RunShared. A test binary is one
// package, so a package-level variable is exactly "one per package".
var shared struct {
	mu      sync.Mutex
	enabled bool
	env     *Env
	err     error
}

// RunShared runs a package's tests (m.Run) and then stops the Env that
// Shared started, if any; call it from TestMain as
//
//	func TestMain(m *testing.M) { os.Exit(kubeenv.RunShared(m)) }
//
// The Env starts on the first Shared call, so that a run of a package's
// other tests alone (go test -run) pays nothing for it.
func RunShared(m *testing.M) int {
	shared.mu.Lock()
	shared.enabled = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if e := shared.env; e != nil {
		if code != 0 {
			fmt.Fprintf(os.Stderr, "kubeenv: the last output of the shared etcd and kube-apiserver, as a test failed:\n%s\n", e.tails())
		}
		if err := e.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubeenv: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Shared returns the package's Env, starting it on the first call; tests
// that use it must leave what they made in namespaces of their own, since
// the tests after them see the same API server. It skips or fails t as
// Start does, and fails every test after a start that failed.
func Shared(t testing.TB) *Env {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.enabled {
		t.Fatal("kubeenv.Shared needs the package's TestMain to run its tests with kubeenv.RunShared")
	}
	if shared.env != nil {
		return shared.env
	}
	if shared.err != nil {
		t.Fatalf("kubeenv: the package's shared API server did not start: %v", shared.err)
	}
	bins := need(t)
	// Stays the error if start ends this test (t.Fatal in ports.Free),
	// so that the tests after it are told.
	shared.err = fmt.Errorf("starting it ended test %s", t.Name())
	e, err := start(t, bins)
	if err != nil {
		shared.err = err
		t.Fatalf("kubeenv: %v", err)
	}
	shared.env, shared.err = e, nil
	return e
}

// binaries are the paths of the programs an Env runs.
type binaries struct{ etcd, apiserver string }

// need finds etcd ($WEFT_ETCD, else on PATH) and kube-apiserver
// ($WEFT_KUBE_APISERVER, else .tools/kube-apiserver in the module root),
// or skips t (fails it in CI) saying how to get them.
func need(t testing.TB) binaries {
	t.Helper()
	var b binaries
	var missing []string
	if p := os.Getenv("WEFT_ETCD"); p != "" {
		if isFile(p) {
			b.etcd = p
		} else {
			missing = append(missing, fmt.Sprintf("$WEFT_ETCD (%s) is no file", p))
		}
	} else if p, err := exec.LookPath("etcd"); err == nil {
		b.etcd = p
	} else {
		missing = append(missing, "etcd is not installed (make deps installs Debian's etcd-server)")
	}
	if p := os.Getenv("WEFT_KUBE_APISERVER"); p != "" {
		if isFile(p) {
			b.apiserver = p
		} else {
			missing = append(missing, fmt.Sprintf("$WEFT_KUBE_APISERVER (%s) is no file", p))
		}
	} else if root, err := moduleRoot(); err != nil {
		missing = append(missing, fmt.Sprintf("kube-apiserver not found: %v", err))
	} else if p := filepath.Join(root, ".tools", "kube-apiserver"); !isFile(p) {
		missing = append(missing, fmt.Sprintf("%s is not built (make kube-tools builds it)", p))
	} else {
		b.apiserver = p
	}
	if len(missing) == 0 {
		return b
	}
	msg := "kubeenv needs a real etcd and kube-apiserver: " + strings.Join(missing, "; ")
	if ci := os.Getenv("CI"); ci != "" && ci != "false" {
		t.Fatal(msg + "; CI must run these tests")
	}
	t.Skip(msg)
	return b
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// moduleRoot is the directory of weft's go.mod above the working
// directory, which go test sets to the package's.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			first, _ := bufio.NewReader(f).ReadString('\n')
			f.Close()
			if strings.TrimSpace(first) == "module github.com/weftmesh/weft" {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/weftmesh/weft above the working directory")
		}
		dir = parent
	}
}

// tempRoot is where an Env keeps its files: in memory when /dev/shm is
// there. etcd syncs every write to disk, and the API server writes
// hundreds of objects as it starts (RBAC roles, priority levels, ...); on
// tmpfs a sync costs nothing, and Debian's etcd 3.4 has no flag to skip it.
func tempRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "kubeenv-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// ownerFile, in an Env's directory, holds the pid of the test binary that
// made it.
const ownerFile = "owner"

// removeStale removes the directories of Envs whose test binary died
// before its cleanup ran (killed by go test's -timeout, or by hand): the
// kernel ended their processes, but in /dev/shm each left some 120 MB of
// memory (etcd preallocates its log) that nothing else would free.
func removeStale(root string) {
	dirs, _ := filepath.Glob(filepath.Join(root, "kubeenv-*"))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not an Env's, or one being made right now
		}
		pid, err := strconv.Atoi(string(data))
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			_ = os.RemoveAll(dir) // best effort: a leftover costs memory, not correctness
		}
	}
}

// start starts etcd, then kube-apiserver, and waits until the API server
// is ready. t gives ports and the context; the processes outlive the test
// (Shared's Env lives until RunShared stops it), so they are not bound to
// t's context. On error, what had started is stopped again.
func start(t testing.TB, bins binaries) (*Env, error) {
	t.Helper()
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()

	root := tempRoot()
	removeStale(root)
	dir, err := os.MkdirTemp(root, "kubeenv-")
	if err != nil {
		return nil, fmt.Errorf("making its directory: %w", err)
	}
	e := &Env{dir: dir}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("writing its owner: %w", err)
	}
	started := false
	// A deferred check of a flag, not of err: ports.Free may end the test
	// with runtime.Goexit, which runs this but returns nothing.
	defer func() {
		if !started {
			_ = e.Stop() // the start's error is the one to report
		}
	}()

	if e.ca, err = newAuthority(); err != nil {
		return nil, err
	}
	e.CACert = e.ca.certPEM
	_, svcNet, err := net.ParseCIDR(ServiceCIDR)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", ServiceCIDR, err)
	}
	// The API server gives the kubernetes Service the range's first address.
	serviceIP := append(net.IP(nil), svcNet.IP.To4()...)
	serviceIP[3]++
	files, err := writeAPIServerFiles(dir, e.ca, serviceIP)
	if err != nil {
		return nil, err
	}
	adminCert, adminKey, err := e.ca.issue(leaf{cn: "kubeenv-admin", groups: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}

	etcdURL, err := e.startEtcd(ctx, t, bins.etcd)
	if err != nil {
		return nil, err
	}
	if err := e.startAPIServer(ctx, t, bins.apiserver, etcdURL, files, adminCert, adminKey); err != nil {
		return nil, err
	}
	started = true
	t.Logf("kubeenv: etcd and kube-apiserver at %s ready in %s", e.URL, time.Since(began).Round(time.Millisecond))
	return e, nil
}

func (e *Env) startEtcd(ctx context.Context, t testing.TB, bin string) (string, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	var err error
	for try := range attempts {
		clientURL := fmt.Sprintf("http://127.0.0.1:%d", ports.Free(t))
		peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports.Free(t))
		args := []string{
			"--name=kubeenv",
			"--data-dir=" + filepath.Join(e.dir, "etcd-"+strconv.Itoa(try)),
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kubeenv=" + peerURL,
			"--logger=zap",
			"--log-outputs=stderr",
			"--log-level=warn", // what a failed test shows: its problems, not its progress
		}
		e.etcd, err = startProcess("etcd", bin, args, filepath.Join(e.dir, "etcd.log"))
		if err != nil {
			return "", err
		}
		err = e.etcd.waitReady(ctx, client, clientURL+"/health", `"true"`)
		if err == nil {
			return clientURL, nil
		}
		e.etcd.kill()
		if !errors.Is(err, errPortTaken) {
			return "", err
		}
	}
	return "", err
}

func (e *Env) startAPIServer(ctx context.Context, t testing.TB, bin, etcdURL string, f apiserverFiles, adminCert, adminKey []byte) error {
	t.Helper()
	var err error
	for range attempts {
		url := fmt.Sprintf("https://127.0.0.1:%d", ports.Free(t))
		e.URL = url
		e.admin = &rest.Config{
			Host: url,
			TLSClientConfig: rest.TLSClientConfig{
				CAData:   e.ca.certPEM,
				CertData: adminCert,
				KeyData:  adminKey,
			},
			// Tests make objects in bursts; client-go's default of 5
			// requests a second would make them wait for nothing.
			QPS:   1000,
			Burst: 2000,
		}
		_, port, _ := strings.Cut(strings.TrimPrefix(url, "https://"), ":")
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + port,
			"--cert-dir=" + e.dir, // unused with the files below, but not /var/run/kubernetes
			"--tls-cert-file=" + f.servingCert,
			"--tls-private-key-file=" + f.servingKey,
			"--client-ca-file=" + f.caCert,
			"--authorization-mode=RBAC",
			// Added to the defaults (NamespaceLifecycle, ServiceAccount,
			// ...), which include these two as well: named because weft's
			// injection depends on them.
			"--enable-admission-plugins=MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
			"--service-account-issuer=" + Issuer,
			"--service-account-key-file=" + f.saPub,
			"--service-account-signing-key-file=" + f.saKey,
			"--service-cluster-ip-range=" + ServiceCIDR,
			"--allow-privileged=true", // weft's init step runs with NET_ADMIN
			"--profiling=false",
			// Webhooks and aggregated APIs that name a Service are reached
			// at its endpoints' addresses, never by resolving its DNS name:
			// outside a cluster that name could resolve to a host off this
			// machine, where a test must never send traffic.
			"--enable-aggregator-routing=true",
		}
		e.apiserver, err = startProcess("kube-apiserver", bin, args, filepath.Join(e.dir, "kube-apiserver.log"))
		if err != nil {
			return err
		}
		var client *http.Client
		client, err = rest.HTTPClientFor(e.admin)
		if err != nil {
			return fmt.Errorf("an HTTP client for the API server: %w", err)
		}
		err = e.apiserver.waitReady(ctx, client, url+"/readyz", "ok")
		client.CloseIdleConnections()
		if err == nil {
			return nil
		}
		e.apiserver.kill()
		if !errors.Is(err, errPortTaken) {
			return err
		}
	}
	return err
}

// Stop kills kube-apiserver and etcd and removes their files. Start's
// cleanup and RunShared call it; calling it again does nothing.
func (e *Env) Stop() error {
	e.stopOnce.Do(func() {
		if e.apiserver != nil {
			e.apiserver.kill()
		}
		if e.etcd != nil {
			e.etcd.kill()
		}
		if err := os.RemoveAll(e.dir); err != nil {
			e.stopErr = fmt.Errorf("removing %s: %w", e.dir, err)
		}
	})
	return e.stopErr
}

// Running reports whether etcd and kube-apiserver both still run.
func (e *Env) Running() bool {
	return e.etcd != nil && !e.etcd.exited() && e.apiserver != nil && !e.apiserver.exited()
}

func (e *Env) tails() string {
	var b strings.Builder
	for _, p := range []*process{e.etcd, e.apiserver} {
		if p != nil {
			fmt.Fprintf(&b, "--- %s ---\n%s\n", p.name, p.tail(40))
		}
	}
	return b.String()
}

// AdminConfig returns a new config of a user in system:masters, whom RBAC
// allows everything.
func (e *Env) AdminConfig() *rest.Config { return rest.CopyConfig(e.admin) }

// UserConfig returns a config that authenticates as user, in groups, by a
// client certificate the Env's CA issues (as a cluster's CA would for a
// person); RBAC allows it nothing until a test binds it a role.
func (e *Env) UserConfig(t testing.TB, user string, groups ...string) *rest.Config {
	t.Helper()
	cert, key, err := e.ca.issue(leaf{cn: user, groups: groups})
	if err != nil {
		t.Fatalf("kubeenv: a client certificate for %q: %v", user, err)
	}
	c := rest.CopyConfig(e.admin)
	c.CertData, c.KeyData = cert, key
	return c
}

// TokenConfig returns a config that authenticates with a bearer token,
// such as a ServiceAccount token from TokenRequest.
func (e *Env) TokenConfig(token string) *rest.Config {
	c := rest.CopyConfig(e.admin)
	c.CertData, c.KeyData = nil, nil
	c.BearerToken = token
	return c
}

// Client returns a clientset of the admin.
func (e *Env) Client(t testing.TB) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(e.AdminConfig())
	if err != nil {
		t.Fatalf("kubeenv: admin clientset: %v", err)
	}
	return c
}

// Dynamic returns a dynamic client of the admin, for kinds with no typed
// client (CRDs, and the CRD kind itself, which lives in a module weft does
// not require).
func (e *Env) Dynamic(t testing.TB) dynamic.Interface {
	t.Helper()
	c, err := dynamic.NewForConfig(e.AdminConfig())
	if err != nil {
		t.Fatalf("kubeenv: admin dynamic client: %v", err)
	}
	return c
}

// Kubeconfig writes a kubeconfig of the admin into a directory of t's and
// returns its path, for a weft binary a test runs against the Env.
func (e *Env) Kubeconfig(t testing.TB) string {
	t.Helper()
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubeenv"] = &clientcmdapi.Cluster{Server: e.URL, CertificateAuthorityData: e.admin.CAData}
	cfg.AuthInfos["kubeenv-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: e.admin.CertData, ClientKeyData: e.admin.KeyData}
	cfg.Contexts["kubeenv"] = &clientcmdapi.Context{Cluster: "kubeenv", AuthInfo: "kubeenv-admin", Namespace: "default"}
	cfg.CurrentContext = "kubeenv"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatalf("kubeenv: writing a kubeconfig: %v", err)
	}
	return path
}

// CreateNamespace creates a namespace with labels, and its "default"
// ServiceAccount, which a controller manager would add and without which
// the ServiceAccount admission plugin rejects every Pod that names none.
func (e *Env) CreateNamespace(t testing.TB, name string, labels map[string]string) {
	t.Helper()
	c := e.Client(t)
	ctx := t.Context()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if _, err := c.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubeenv: creating namespace %s: %v", name, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if _, err := c.CoreV1().ServiceAccounts(name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("kubeenv: creating %s/default ServiceAccount: %v", name, err)
	}
}
