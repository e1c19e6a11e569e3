package admin

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/appprobe"
)

// prober answers the kubelet's probes of the app, moved onto the admin
// port, by sending each to the app at appAddr (the pod's IP, where the
// kubelet would have sent it), where neither mTLS nor the proxy's
// interception is in the way: the proxy's own connections are never
// redirected.
type prober struct {
	probes  appprobe.Set
	appAddr string
	client  *http.Client
	log     *slog.Logger
}

func newProber(probes appprobe.Set, appAddr string, logger *slog.Logger) *prober {
	if appAddr == "" {
		appAddr = "127.0.0.1"
	}
	return &prober{
		probes:  probes,
		appAddr: appAddr,
		log:     logger,
		client: &http.Client{
			Transport: &http.Transport{
				// As the kubelet's prober: HTTPS is not verified, and every
				// probe has a connection of its own.
				TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the kubelet does not verify probes either
				DisableKeepAlives: true,
			},
			// A redirect is the app's answer: 3xx counts as success to the
			// kubelet, and following it could leave the pod.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (pr *prober) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := appprobe.Key(r.PathValue("container"), r.PathValue("kind"))
	probe, ok := pr.probes[key]
	if !ok {
		http.Error(w, fmt.Sprintf("no app probe %s: the injector moved none here", key), http.StatusNotFound)
		return
	}
	timeout := time.Second
	if probe.TimeoutSeconds > 0 {
		timeout = time.Duration(probe.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	status, err := pr.send(ctx, probe)
	if err != nil {
		// The kubelet logs the body of a failed probe: say what failed.
		pr.log.Debug("app probe failed", "probe", key, "error", err)
		http.Error(w, fmt.Sprintf("app probe %s: %v", key, err), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "app probe %s: the app answered %d\n", key, status)
}

// send makes the probe's request to the app and returns the app's status;
// a TCP probe's is 200 when the app accepted the connection.
func (pr *prober) send(ctx context.Context, p appprobe.Probe) (int, error) {
	if p.Scheme == "TCP" {
		target := net.JoinHostPort(pr.appAddr, strconv.Itoa(int(p.Port)))
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return 0, fmt.Errorf("connect to %s: %w", target, err)
		}
		c.Close()
		return http.StatusOK, nil
	}
	scheme := "http"
	if p.Scheme == "HTTPS" {
		scheme = "https"
	}
	path := p.Path
	if path == "" {
		path = "/"
	}
	target := scheme + "://" + net.JoinHostPort(pr.appAddr, strconv.Itoa(int(p.Port))) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, fmt.Errorf("request %s: %w", target, err)
	}
	req.Header.Set("User-Agent", "kube-probe/weft")
	req.Header.Set("Accept", "*/*")
	for _, h := range p.Headers {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	resp, err := pr.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", target, err)
	}
	// Read a little so the app sees its answer taken, as the kubelet does.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
