package up

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/weftmesh/weft/internal/controlplane"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/source/files"
)

// Options configure a mesh on one machine.
type Options struct {
	// ControlPlane configures the control plane run in this process; its
	// StateDir also holds the logs of every process weft up starts.
	ControlPlane controlplane.Options
	// ProxyPath is the weft-proxy binary.
	ProxyPath string
	// Apps are started once the control plane is up and stopped with it.
	Apps []Process
	// Out gets the summary for the user.
	Out io.Writer
	// StopGrace is how long each process has to drain when stopping.
	StopGrace time.Duration
	// Tracing is handed to every proxy started; the zero value is off.
	Tracing Tracing
}

// Run runs the mesh until ctx ends, then stops everything it started.
func Run(ctx context.Context, opts Options) error {
	if opts.StopGrace <= 0 {
		opts.StopGrace = 15 * time.Second
	}
	if err := opts.Tracing.Validate(); err != nil {
		return err
	}
	if _, err := os.Stat(opts.ProxyPath); err != nil {
		return fmt.Errorf("weft-proxy binary: %w", err)
	}
	if opts.ControlPlane.Logger == nil {
		opts.ControlPlane.Logger = slog.Default()
	}
	logDir := filepath.Join(opts.ControlPlane.StateDir, "logs")
	cp, err := controlplane.New(opts.ControlPlane)
	if err != nil {
		return err
	}
	cpCtx, stopCP := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCP()
	cpDone := make(chan error, 1)
	go func() { cpDone <- cp.Run(cpCtx) }()
	select {
	case <-cp.Loaded():
	case err := <-cpDone:
		return err
	}

	m := &mesh{opts: opts, cp: cp, logDir: logDir, proxies: map[model.Ref]*running{}}
	procCtx, stopProcs := context.WithCancel(context.WithoutCancel(ctx))
	for _, app := range opts.Apps {
		m.start(procCtx, "app-"+app.Name, app)
	}
	m.reconcile(procCtx)
	m.waitReady(ctx, 30*time.Second)
	m.printSummary()

	for done := false; !done; {
		snap := cp.Store().Snapshot()
		select {
		case <-ctx.Done():
			done = true
		case err := <-cpDone:
			stopProcs()
			m.wait()
			return fmt.Errorf("control plane stopped: %w", err)
		case <-snap.Superseded():
			m.reconcile(procCtx)
		}
	}
	fmt.Fprintln(opts.Out, "stopping every process weft up started...")
	stopProcs()
	m.wait()
	stopCP()
	if err := <-cpDone; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	fmt.Fprintln(opts.Out, "stopped.")
	return nil
}

type running struct {
	workload *model.Workload
	cancel   context.CancelFunc
	sup      *supervised
}

type mesh struct {
	opts    Options
	cp      *controlplane.ControlPlane
	logDir  string
	mu      sync.Mutex
	all     []*supervised
	proxies map[model.Ref]*running
}

func (m *mesh) start(ctx context.Context, logName string, p Process) *supervised {
	out, err := openLog(m.logDir, logName)
	if err != nil {
		m.opts.ControlPlane.Logger.Error("cannot open process log; discarding its output", "process", p.Name, "err", err)
		out = nil
	}
	s := &supervised{proc: p, log: m.opts.ControlPlane.Logger, stopped: make(chan struct{}), stopGrace: m.opts.StopGrace}
	if out != nil {
		s.out = out
		go func() { <-s.stopped; out.Close() }()
	}
	m.mu.Lock()
	m.all = append(m.all, s)
	m.mu.Unlock()
	go s.run(ctx)
	return s
}

// wait returns when every process has stopped.
func (m *mesh) wait() {
	m.mu.Lock()
	all := m.all
	m.mu.Unlock()
	for _, s := range all {
		<-s.stopped
	}
}

// reconcile runs a proxy for every workload the manifests declare, with
// the flags its workload asks for; registered workloads bring their own.
func (m *mesh) reconcile(ctx context.Context) {
	want := map[model.Ref]*model.Workload{}
	for _, w := range m.cp.Store().Snapshot().Workloads() {
		if owner, _ := m.cp.Store().WorkloadOwner(w.Ref); owner == files.SourceName {
			want[w.Ref] = w
		}
	}
	for ref, r := range m.proxies {
		if w, ok := want[ref]; !ok || w.AdminPort != r.workload.AdminPort {
			m.opts.ControlPlane.Logger.Info("stopping proxy", "workload", ref)
			r.cancel()
			delete(m.proxies, ref)
		}
	}
	for ref, w := range want {
		if _, ok := m.proxies[ref]; ok {
			continue
		}
		pctx, cancel := context.WithCancel(ctx)
		args := append([]string{"--control-plane", m.cp.GRPCAddr(), "--workload", ref.String(), "--admin", adminAddr(w),
			"--trust-domain", m.cp.TrustDomain()}, m.opts.Tracing.proxyArgs()...)
		name := "proxy-" + ref.Namespace + "-" + ref.Name
		m.opts.ControlPlane.Logger.Info("starting proxy", "workload", ref)
		sup := m.start(pctx, name, Process{Name: name, Path: m.opts.ProxyPath, Args: args, Env: m.joinToken(w)})
		m.proxies[ref] = &running{workload: w, cancel: cancel, sup: sup}
	}
}

// joinToken mints, at each start of a workload's proxy, a short-lived
// join token for the workload's identity.
func (m *mesh) joinToken(w *model.Workload) func() ([]string, error) {
	return func() ([]string, error) {
		tok, err := m.cp.JoinToken(w.Ref.Namespace, w.Identity().Name, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		return []string{"WEFT_JOIN_TOKEN=" + tok.Token}, nil
	}
}

func adminAddr(w *model.Workload) string {
	return fmt.Sprintf("127.0.0.1:%d", w.AdminPort)
}

// waitReady waits, up to limit, for every proxy to report ready.
func (m *mesh) waitReady(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for ref, r := range m.proxies {
		if r.workload.AdminPort == 0 {
			continue
		}
		url := "http://" + adminAddr(r.workload) + "/ready"
		for {
			resp, err := client.Get(url)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				fmt.Fprintf(m.opts.Out, "proxy of %s is not ready yet; see its log in %s\n", ref, m.logDir)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (m *mesh) printSummary() {
	out := m.opts.Out
	fmt.Fprintf(out, "\nweft is up.\n\n")
	fmt.Fprintf(out, "  control plane   grpc %s   admin http://%s\n", m.cp.GRPCAddr(), m.cp.AdminAddr())
	if m.opts.ControlPlane.ManifestDir != "" {
		fmt.Fprintf(out, "  manifests       %s (watched: edits apply live)\n", m.opts.ControlPlane.ManifestDir)
	}
	fmt.Fprintf(out, "  logs            %s\n", m.logDir)
	if m.opts.Tracing.Enabled() {
		fmt.Fprintf(out, "  tracing         %s\n", m.opts.Tracing)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  WORKLOAD\tAPP PORTS\tPROXY ADMIN\tCALLS (local port -> service)")
	refs := make([]model.Ref, 0, len(m.proxies))
	for ref := range m.proxies {
		refs = append(refs, ref)
	}
	sort.Slice(refs, func(i, j int) bool { return refs[i].String() < refs[j].String() })
	var tryURL string
	for _, ref := range refs {
		w := m.proxies[ref].workload
		var ports, calls []string
		for _, p := range w.Ports {
			ports = append(ports, fmt.Sprintf("%d/%s", p.Port, protoName(p.Protocol)))
		}
		for _, o := range w.Outbound {
			calls = append(calls, fmt.Sprintf("%d -> %s:%d", o.LocalPort, o.Service, o.Port))
			if tryURL == "" && o.Service.Name == "web" {
				tryURL = fmt.Sprintf("http://127.0.0.1:%d/", o.LocalPort)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", ref, strings.Join(ports, " "), "http://"+adminAddr(w), strings.Join(calls, ", "))
	}
	tw.Flush()
	for _, app := range m.opts.Apps {
		fmt.Fprintf(out, "  app %-12s %s\n", app.Name, strings.Join(app.Args, " "))
	}
	if tryURL != "" {
		fmt.Fprintf(out, "\nTry it through the mesh:  curl %sapi/products\n", tryURL)
	}
	fmt.Fprintf(out, "Inspect it:               weft status --admin %s\n", m.cp.AdminAddr())
	fmt.Fprintf(out, "Press Ctrl-C to stop everything.\n\n")
}

func protoName(p model.Protocol) string {
	if p == model.ProtocolDetect {
		return "auto"
	}
	return string(p)
}
