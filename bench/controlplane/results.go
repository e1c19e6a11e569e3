package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Result is one run's measurements, written as JSON.
type Result struct {
	Started    time.Time `json:"started"`
	Command    string    `json:"command"`
	GoVersion  string    `json:"go_version"`
	GOMAXPROCS int       `json:"gomaxprocs"`
	NumCPU     int       `json:"num_cpu"`
	Contention string    `json:"contention,omitempty"`
	Scale      Scale     `json:"scale"`
	Parallel   int       `json:"parallel"`

	Load      Phase `json:"load"`
	Bootstrap struct {
		Phase
		Proxies   int     `json:"proxies"`
		PerSecond float64 `json:"proxies_per_second"`
		// ToFull is each steady proxy's start (key, CSR, Certify) to its
		// first full config, while the others connect too.
		ToFull Dist `json:"to_full_config_ms"`
	} `json:"bootstrap"`
	NewProxy struct {
		Phase
		Count int `json:"count"`
		// Total is start (key, CSR, Certify) to full config; Stream is
		// certificate held to full config.
		Total  Dist `json:"total_ms"`
		Stream Dist `json:"stream_ms"`
	} `json:"new_proxy"`
	Changes struct {
		Phase
		Count int `json:"count"`
		// Everywhere is, per change, the time until the last subscriber
		// had it; PerProxy is each subscriber's time.
		Everywhere      Dist    `json:"everywhere_ms"`
		PerProxy        Dist    `json:"per_proxy_ms"`
		Subscribers     int     `json:"subscriber_updates_expected"`
		MeanSubscribers float64 `json:"mean_subscribers_per_change"`
		// Touched counts proxies sent a response for a change's version;
		// Extra those of them that do not subscribe to its service.
		Touched int `json:"proxies_touched"`
		Extra   int `json:"non_subscribers_touched"`
		Missed  int `json:"subscriber_updates_missed"`
	} `json:"endpoint_change"`
	// Memory and CPUSeconds are the control plane's process's: the
	// simulated proxies run in another (Proxies).
	Memory struct {
		// ModelHeapMiB is the live heap with the mesh loaded and no proxy
		// connected; HeapMiB with every proxy connected.
		ModelHeapMiB float64 `json:"model_heap_mib"`
		HeapMiB      float64 `json:"heap_mib"`
		RSSMiB       float64 `json:"rss_mib"`
		PeakRSSMiB   float64 `json:"peak_rss_mib"`
	} `json:"memory"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Proxies    struct {
		CPUSeconds float64 `json:"cpu_seconds"`
		PeakRSSMiB float64 `json:"peak_rss_mib"`
	} `json:"simulated_proxies_process"`
	Targets []Target `json:"targets"`
}

// Phase is how long a phase took and the process CPU it used.
type Phase struct {
	Duration   float64 `json:"duration_ms"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// Dist summarises durations, in milliseconds.
type Dist struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func distribution(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(f float64) float64 {
		i := int(f*float64(len(s))+0.5) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	return Dist{N: len(s), P50: q(.50), P90: q(.90), P99: q(.99), Max: ms(s[len(s)-1])}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Target is one of issue 7's targets and what was measured against it.
type Target struct {
	Name     string  `json:"name"`
	Limit    float64 `json:"limit"`
	Unit     string  `json:"unit"`
	Measured float64 `json:"measured"`
	Met      bool    `json:"met"`
}

func (r *Result) evaluate() {
	t := func(name string, limit float64, unit string, got float64) {
		r.Targets = append(r.Targets, Target{Name: name, Limit: limit, Unit: unit, Measured: got, Met: got <= limit})
	}
	t("new proxy fully configured, p99 (start to full config)", 50, "ms", r.NewProxy.Total.P99)
	t("endpoint change at every subscriber, p99", 200, "ms", r.Changes.Everywhere.P99)
	t("control plane memory (peak RSS)", 1024, "MiB", r.Memory.PeakRSSMiB)
}

// cpuClock reads this process's CPU time (user and system).
type cpuClockT struct{ first, last float64 }

func cpuClock() *cpuClockT {
	now := cpuSeconds()
	return &cpuClockT{first: now, last: now}
}

// lap returns the CPU seconds since the last lap.
func (c *cpuClockT) lap() float64 {
	now := cpuSeconds()
	d := now - c.last
	c.last = now
	return round3(d)
}

func (c *cpuClockT) total() float64 { return round3(cpuSeconds() - c.first) }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func round3(f float64) float64 { return float64(int64(f*1000+0.5)) / 1000 }

// heapMiB is the live heap after a collection.
func heapMiB() float64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return round3(float64(ms.HeapAlloc) / (1 << 20))
}

// rssMiB reads the resident set and its peak from /proc/self/status.
func rssMiB() (rss, peak float64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	for line := range strings.Lines(string(data)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			rss = round3(kb / 1024)
		case "VmHWM":
			peak = round3(kb / 1024)
		}
	}
	return rss, peak
}

func writeJSON(path string, res *Result) error {
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("results %s: %w", path, err)
	}
	return nil
}

func quoteArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			a = strconv.Quote(a)
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func (r *Result) summary() string {
	var b bytes.Buffer
	r.markdown(&b)
	return b.String()
}
