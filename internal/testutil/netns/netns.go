package netns

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Require skips t unless it runs as root with ip(8) and bins on the PATH;
// in CI (CI set), where they must be, it fails t instead.
func Require(t testing.TB, bins ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range append([]string{"ip"}, bins...) {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "network namespace tests need " + strings.Join(missing, ", ") + " (run as root after scripts/install-deps.sh)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// NS is a network namespace made for one test, deleted after it.
type NS struct {
	t    testing.TB
	Name string
}

// New makes a namespace named prefix-PID-role, with its loopback up.
func New(t testing.TB, prefix, role string) *NS {
	t.Helper()
	n := &NS{t: t, Name: fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), role)}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n.Name).Run() })
	n.IP("link", "set", "lo", "up")
	return n
}

// Run runs a command and returns its output, failing t if it fails.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs ip(8) in the namespace.
func (n *NS) IP(args ...string) {
	n.t.Helper()
	Run(n.t, "ip", append([]string{"-n", n.Name}, args...)...)
}

// Do runs f on an OS thread moved into the namespace: sockets f opens and
// processes it starts belong to the namespace for good. The thread goes
// back to the test's namespace after (and may then serve others, and
// outlive the processes it started, whose parent-death signal follows
// it); if it cannot, it dies with its goroutine rather than serve anyone
// else from the wrong namespace.
func (n *NS) Do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open own netns: %w", err)
			return
		}
		defer unix.Close(home)
		target, err := unix.Open("/run/netns/"+n.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.Name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(home, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave netns %s: %w", n.Name, err)
			return // still locked: the thread ends with the goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Listen opens a listener in the namespace, closed when the test ends.
func (n *NS) Listen(network, addr string) net.Listener {
	n.t.Helper()
	var ln net.Listener
	if err := n.Do(func() (err error) { ln, err = net.Listen(network, addr); return err }); err != nil {
		n.t.Fatalf("listen on %s in %s: %v", addr, n.Name, err)
	}
	n.t.Cleanup(func() { ln.Close() })
	return ln
}

// Dial connects from the namespace.
func (n *NS) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	var d net.Dialer
	err := n.Do(func() (err error) { c, err = d.DialContext(ctx, network, addr); return err })
	return c, err
}
