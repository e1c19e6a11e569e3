package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/weftmesh/weft/internal/proxy/tap"
)

// tapFlags are the flags of weft tap and weft top: where the control plane
// is, its admin token, and the filter the proxies apply.
type tapFlags struct {
	privileged
	filter tap.Filter
}

func (f *tapFlags) add(fs *pflag.FlagSet) {
	f.privileged.add(fs)
	fs.StringVar(&f.filter.Workload, "workload", "", "tap only this workload's proxy (namespace/name)")
	fs.StringVar(&f.filter.Service, "service", "", "only requests to this service (namespace/name), as its callers' proxies see them")
	fs.StringVar(&f.filter.PathPrefix, "path", "", "only requests whose path starts with this prefix")
	fs.StringVar(&f.filter.Method, "method", "", "only requests with this method (GET, POST, ...)")
	fs.StringVar(&f.filter.Direction, "direction", "", "only inbound (calls a workload took) or outbound (calls it made) requests")
}

// open starts a tap at the control plane, which asks every proxy the filter
// concerns; the stream runs until ctx ends or the control plane stops.
func (f *tapFlags) open(ctx context.Context) (io.ReadCloser, error) {
	if _, err := tap.ParseFilter(f.filter.Query()); err != nil {
		return nil, err
	}
	token, err := os.ReadFile(filepath.Join(f.stateDir, "admin.token"))
	if err != nil {
		return nil, fmt.Errorf("admin token (tap needs it; is --state-dir the control plane's?): %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+f.admin+"/api/v1/tap?"+f.filter.Query().Encode(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	// No timeout: the answer is a stream that lasts as long as the tap.
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("control plane admin API at %s (is `weft up` or `weft control` running? see --admin): %w", f.admin, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return nil, fmt.Errorf("tap: %s: %s", resp.Status, e.Error)
		}
		return nil, fmt.Errorf("tap: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Body, nil
}

// stream reads a tap until ctx ends (nil: the user stopped it) or the
// stream does (an error: the control plane went away).
func (f *tapFlags) stream(ctx context.Context, fn func(tap.Record) error) error {
	body, err := f.open(ctx)
	if err != nil {
		return err
	}
	defer body.Close()
	err = tap.Read(ctx, body, fn)
	if ctx.Err() != nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return errors.New("tap: the control plane ended the stream")
	}
	return err
}

// noteLine is how a note or a drop count reads on standard error.
func noteLine(r tap.Record) string {
	who := ""
	if r.Proxy != "" {
		who = r.Proxy + ": "
	}
	if r.Dropped > 0 {
		return fmt.Sprintf("# %s%d requests not shown: the tap fell behind", who, r.Dropped)
	}
	return "# " + who + r.Note
}

func newTapCommand() *cobra.Command {
	f := &tapFlags{}
	var output string
	cmd := &cobra.Command{
		Use:   "tap",
		Short: "Stream live request metadata from the proxies: method, path, status, latency, identities",
		Long: `Stream one line per request the mesh's proxies carry, as they finish:
time, direction, proxy, method, authority, path (without its query),
status, gRPC status, latency, the source and destination identities, and
whether the hop was mutual TLS. Never bodies or header values.

A request between two meshed workloads shows twice: outbound at the
caller's proxy and inbound at the callee's. The control plane taps every
connected proxy (or the one --workload names) with its own identity, the
only one proxies serve tap to, and only for a caller holding the admin
token. Notes about the tap itself (proxies joining, leaving or that cannot
be tapped) go to standard error.`,
		Example: `  weft tap --service demo/catalog
  weft tap --workload demo/web-0 --direction inbound --path /api
  weft tap -o json | jq 'select(.status >= 500)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return fmt.Errorf("--output: want table or json, got %q", output)
			}
			out, errOut := cmd.OutOrStdout(), cmd.ErrOrStderr()
			enc := json.NewEncoder(out)
			enc.SetEscapeHTML(false)
			return f.stream(cmd.Context(), func(r tap.Record) error {
				switch {
				case r.Event == nil:
					_, err := fmt.Fprintln(errOut, noteLine(r))
					return err
				case output == "json":
					return enc.Encode(r.Event)
				default:
					_, err := fmt.Fprintln(out, eventLine(r.Event))
					return err
				}
			})
		},
	}
	f.add(cmd.Flags())
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table (one line per request) or json (one event object per line)")
	return cmd
}

// eventLine is one request on one line.
func eventLine(e *tap.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-8s proxy=%s %s %s%s status=%d", e.Time.Local().Format("15:04:05.000"), e.Direction, dashIfEmpty(e.Proxy),
		dashIfEmpty(e.Method), e.Authority, e.Path, e.Status)
	if e.GRPCStatus != "" {
		fmt.Fprintf(&b, " grpc-status=%s", e.GRPCStatus)
	}
	fmt.Fprintf(&b, " latency=%s src=%s dst=%s tls=%t", tapLatency(e.Latency), dashIfEmpty(e.SourceIdentity), dashIfEmpty(e.DestinationIdentity), e.TLS)
	if e.Error != "" {
		fmt.Fprintf(&b, " error=%q", e.Error)
	}
	return b.String()
}

func dashIfEmpty(s string) string { return cmp.Or(s, "-") }

// tapLatency rounds a duration to three significant digits or so.
func tapLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func newTopCommand() *cobra.Command {
	f := &tapFlags{}
	var interval, window, onceAfter time.Duration
	var rows int
	cmd := &cobra.Command{
		Use:   "top",
		Short: "Show the busiest request paths, live: rate, success rate and latency",
		Long: `Tap the proxies (as weft tap does) and show a table of the busiest paths
over a sliding window, refreshed every --interval: requests, rate,
success rate (not 5xx, not a gRPC error, answered) and p50/p99 latency.
Rows are method and path, with numeric, UUID-like and long hex path
segments shown as {id}, so /orders/17 and /orders/42 are one row.

Each request counts once: a call between two meshed workloads is seen by
both proxies, and counts at the caller's (outbound) side; a call from a
client outside the mesh counts at the inbound side. With --workload or
--direction, every request the filter selects counts.`,
		Example: `  weft top
  weft top --service demo/catalog --interval 5s
  weft top --once-after 10s   # print one table and exit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interval <= 0 || window <= 0 || rows <= 0 || onceAfter < 0 {
				return errors.New("--interval, --window and --rows must be positive, --once-after not negative")
			}
			return runTop(cmd.Context(), f, cmd.OutOrStdout(), topOptions{interval: interval, window: window, onceAfter: onceAfter, rows: rows})
		},
	}
	f.add(cmd.Flags())
	cmd.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often the table is refreshed")
	cmd.Flags().DurationVar(&window, "window", 30*time.Second, "how far back the table looks")
	cmd.Flags().DurationVar(&onceAfter, "once-after", 0, "print one table after this long and exit (0: refresh until interrupted)")
	cmd.Flags().IntVar(&rows, "rows", 20, "show at most this many paths")
	return cmd
}

type topOptions struct {
	interval, window, onceAfter time.Duration
	rows                        int
}

func runTop(ctx context.Context, f *tapFlags, out io.Writer, o topOptions) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t := newTopTable(o.window, f.filter.Workload != "" || f.filter.Direction != "", time.Now())
	records := make(chan tap.Record, 1024)
	ended := make(chan error, 1)
	go func() {
		ended <- f.stream(ctx, func(r tap.Record) error {
			select {
			case records <- r:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	redraw := redrawable(out)
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	var once <-chan time.Time
	if o.onceAfter > 0 {
		once = time.After(o.onceAfter)
	}
	show := func() error {
		var b strings.Builder
		if redraw {
			b.WriteString("\x1b[H\x1b[2J") // home and clear: a refreshing screen
		}
		t.render(&b, time.Now(), o.rows)
		_, err := io.WriteString(out, b.String())
		return err
	}
	for {
		select {
		case r := <-records:
			t.add(r, time.Now())
		case err := <-ended:
			if err != nil || ctx.Err() != nil {
				return err
			}
			return nil
		case <-once:
			// What already arrived counts.
			for len(records) > 0 {
				t.add(<-records, time.Now())
			}
			return show()
		case <-tick.C:
			if once != nil {
				continue
			}
			if err := show(); err != nil {
				return err
			}
		}
	}
}

// redrawable reports whether w is a terminal, where top redraws in place.
func redrawable(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// topTable aggregates tap events by method and normalised path over a
// sliding window.
type topTable struct {
	window time.Duration
	// every says each event counts; else each request counts once, at its
	// outbound side (see weft top's help).
	every   bool
	started time.Time
	rows    map[topKey]*topRow
	dropped uint64
	notes   []string
}

type topKey struct{ method, path string }

type topRow struct {
	samples []topSample // in arrival order
}

type topSample struct {
	at      time.Time
	latency time.Duration
	ok      bool
}

func newTopTable(window time.Duration, every bool, now time.Time) *topTable {
	return &topTable{window: window, every: every, started: now, rows: map[topKey]*topRow{}}
}

// maxNotes is how many of the latest notes the table shows.
const maxNotes = 5

func (t *topTable) add(r tap.Record, now time.Time) {
	switch {
	case r.Dropped > 0:
		t.dropped += r.Dropped
		return
	case r.Event == nil:
		if r.Note != "" {
			t.notes = append(t.notes, noteLine(r))
			if len(t.notes) > maxNotes {
				t.notes = t.notes[len(t.notes)-maxNotes:]
			}
		}
		return
	}
	e := r.Event
	// A call from a proxy to a proxy is mutual TLS and both proxies see
	// it; the outbound side is the caller's.
	if !t.every && e.Direction == "inbound" && e.TLS {
		return
	}
	k := topKey{method: e.Method, path: normalizePath(e.Path)}
	row := t.rows[k]
	if row == nil {
		row = &topRow{}
		t.rows[k] = row
	}
	ok := e.Status != 0 && e.Status < 500 && (e.GRPCStatus == "" || e.GRPCStatus == "0") && e.Error == ""
	row.samples = append(row.samples, topSample{at: now, latency: e.Latency, ok: ok})
}

// prune forgets the samples older than the window, and rows left empty.
func (t *topTable) prune(now time.Time) {
	cut := now.Add(-t.window)
	for k, row := range t.rows {
		i, _ := slices.BinarySearchFunc(row.samples, cut, func(s topSample, c time.Time) int { return s.at.Compare(c) })
		row.samples = row.samples[i:]
		if len(row.samples) == 0 {
			delete(t.rows, k)
		}
	}
}

// topLine is one row of the table as shown.
type topLine struct {
	topKey
	count    int
	rate     float64
	success  float64
	p50, p99 time.Duration
}

// lines computes the table at now, busiest first.
func (t *topTable) lines(now time.Time) []topLine {
	t.prune(now)
	// Until a whole window has passed, the rate is over the time tapped.
	span := min(t.window, now.Sub(t.started)).Seconds()
	if span <= 0 {
		span = 1
	}
	var out []topLine
	for k, row := range t.rows {
		l := topLine{topKey: k, count: len(row.samples), rate: float64(len(row.samples)) / span}
		lat := make([]time.Duration, len(row.samples))
		good := 0
		for i, s := range row.samples {
			lat[i] = s.latency
			if s.ok {
				good++
			}
		}
		slices.Sort(lat)
		l.success = float64(good) / float64(len(lat))
		l.p50, l.p99 = nearestRank(lat, 0.50), nearestRank(lat, 0.99)
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b topLine) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.path, b.path), cmp.Compare(a.method, b.method))
	})
	return out
}

// nearestRank is the nearest-rank percentile of sorted values.
func nearestRank(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

func (t *topTable) render(w io.Writer, now time.Time, maxRows int) {
	lines := t.lines(now)
	total := 0
	for _, l := range lines {
		total += l.count
	}
	fmt.Fprintf(w, "weft top  %s  %d requests over the last %s, %d paths", now.Local().Format(time.TimeOnly), total, t.window, len(lines))
	if t.dropped > 0 {
		fmt.Fprintf(w, ", %d not seen (the tap fell behind)", t.dropped)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tPATH\tCOUNT\tRATE\tSUCCESS\tP50\tP99")
	for i, l := range lines {
		if i == maxRows {
			fmt.Fprintf(tw, "...\t%d more paths\t\t\t\t\t\n", len(lines)-maxRows)
			break
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f/s\t%.2f%%\t%s\t%s\n", dashIfEmpty(l.method), l.path, l.count, l.rate, 100*l.success, tapLatency(l.p50), tapLatency(l.p99))
	}
	tw.Flush()
	for _, n := range t.notes {
		fmt.Fprintln(w, n)
	}
}

// normalizePath replaces the segments of a path that identify one object
// rather than a kind of request (numbers, UUIDs, long hex strings) with
// {id}, so a table of paths stays short.
func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		if isIDSegment(s) {
			segs[i] = "{id}"
		}
	}
	return strings.Join(segs, "/")
}

func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	digits, hex := true, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		isDigit := c >= '0' && c <= '9'
		digits = digits && isDigit
		hex = hex && (isDigit || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F')
	}
	return digits || hex && len(s) >= 16 || isUUID(s)
}

// isUUID reports whether s is 8-4-4-4-12 hex digits.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
