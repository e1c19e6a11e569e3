package files

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/weftmesh/weft/internal/manifest"
	"github.com/weftmesh/weft/internal/model"
)

// SourceName is the owner name of this source's objects in the store.
const SourceName = "files"

// maxFileSize bounds one manifest file.
const maxFileSize = 16 << 20

// Options configure a Source.
type Options struct {
	Dir    string
	Store  *model.Store
	Logger *slog.Logger
	// Resync is how often the whole directory is read again, in case a
	// change notification was missed. Default 10s.
	Resync time.Duration
	// Debounce is how long to wait after a change notification for more.
	// Default 100ms.
	Debounce time.Duration
	// OnSync, when set, is told the result of every full read of the
	// directory (the control plane's metrics). It is called after the
	// sync, outside the source's lock, and must not block.
	OnSync func(SyncResult)
}

// SyncResult is what one Sync came to.
type SyncResult struct {
	// Problems is how many things are wrong in the directory now: files
	// and objects that do not decode or validate, and objects the store
	// refused. Routes the model does not admit are not among them (they
	// can change between syncs; see Status).
	Problems int
	// Err is set when the directory itself could not be read; everything
	// it declared was kept.
	Err error
}

// Problem is one thing wrong in the manifest directory.
type Problem struct {
	File string `json:"file"`
	// Object is "kind namespace/name", empty when the document could not be
	// read far enough to know.
	Object  string `json:"object,omitempty"`
	Message string `json:"message"`
}

// Status is what the source last saw.
type Status struct {
	Dir      string    `json:"dir"`
	Files    int       `json:"files"`
	Objects  int       `json:"objects"`
	LastSync time.Time `json:"lastSync"`
	Problems []Problem `json:"problems"`
}

// Source watches a manifest directory and keeps the store in step with it.
type Source struct {
	opts Options

	mu      sync.Mutex
	files   map[string]*fileState
	applied map[manifest.Key]manifest.Object
	// origin is the file each applied object came from.
	origin map[manifest.Key]string
	status Status
}

type fileState struct {
	sum [sha256.Size]byte
	// good holds the last good version of each object the file declared.
	good     map[manifest.Key]manifest.Object
	problems []Problem
}

// New returns a source for opts.Dir; nothing is read until Sync or Run.
func New(opts Options) (*Source, error) {
	if opts.Store == nil {
		return nil, errors.New("files: no store")
	}
	info, err := os.Stat(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("manifest directory: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("manifest directory %s: not a directory", opts.Dir)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	if opts.Debounce <= 0 {
		opts.Debounce = 100 * time.Millisecond
	}
	return &Source{
		opts:    opts,
		files:   map[string]*fileState{},
		applied: map[manifest.Key]manifest.Object{},
		status:  Status{Dir: opts.Dir},
	}, nil
}

// Status returns what the last sync saw, and the routes of its files the
// model does not admit now (a route naming a Service that does not exist,
// or taking a match another route has), which can change between syncs.
func (s *Source) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.status
	st.Problems = slices.Clone(st.Problems)
	snap := s.opts.Store.Snapshot()
	for _, pk := range snap.RejectedRoutes() {
		k := manifest.Key{Kind: pk.Kind, Ref: pk.Ref}
		if file, ok := s.origin[k]; ok {
			st.Problems = append(st.Problems, Problem{File: file, Object: k.String(), Message: file + ": " + snap.RouteRejection(pk).Error()})
		}
	}
	return st
}

// Run watches the directory until ctx ends, syncing on every change and
// every Resync interval. Call Sync once before, to load the initial state.
func (s *Source) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching %s: %w", s.opts.Dir, err)
	}
	defer w.Close()
	s.watchTree(w)
	resync := time.NewTicker(s.opts.Resync)
	defer resync.Stop()
	var debounce <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("file watcher closed")
			}
			if ev.Has(fsnotify.Create) {
				s.watchTree(w)
			}
			if debounce == nil {
				debounce = time.After(s.opts.Debounce)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("file watcher closed")
			}
			s.opts.Logger.Warn("manifest watch error; relying on periodic resync", "dir", s.opts.Dir, "err", err)
		case <-debounce:
			debounce = nil
			s.Sync()
		case <-resync.C:
			s.Sync()
		}
	}
}

// watchTree adds every directory under the root to the watcher; adding one
// already watched is a no-op.
func (s *Source) watchTree(w *fsnotify.Watcher) {
	_ = filepath.WalkDir(s.opts.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if path != s.opts.Dir && hidden(d.Name()) {
			return filepath.SkipDir
		}
		if err := w.Add(path); err != nil {
			s.opts.Logger.Warn("cannot watch directory", "dir", path, "err", err)
		}
		return nil
	})
}

func hidden(name string) bool { return strings.HasPrefix(name, ".") }

func isManifest(name string) bool {
	if hidden(name) {
		return false
	}
	switch filepath.Ext(name) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

// Sync reads the directory and applies what changed to the store.
func (s *Source) Sync() {
	res := s.sync()
	if s.opts.OnSync != nil {
		s.opts.OnSync(res)
	}
}

func (s *Source) sync() SyncResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	walkErr := filepath.WalkDir(s.opts.Dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			if path != s.opts.Dir && hidden(d.Name()) {
				return filepath.SkipDir
			}
			return nil
		case !isManifest(d.Name()):
			return nil
		}
		seen[path] = true
		s.readFile(path)
		return nil
	})
	if walkErr != nil {
		// A directory we cannot read now is not a reason to forget what its
		// files declared: keep everything and report.
		s.opts.Logger.Error("reading manifest directory; keeping the last good state", "dir", s.opts.Dir, "err", walkErr)
		s.status.Problems = []Problem{{File: s.opts.Dir, Message: walkErr.Error()}}
		return SyncResult{Problems: len(s.status.Problems), Err: fmt.Errorf("reading manifest directory: %w", walkErr)}
	}
	for path := range s.files {
		if !seen[path] {
			s.opts.Logger.Info("manifest file removed", "file", path)
			delete(s.files, path)
		}
	}
	s.apply()
	return SyncResult{Problems: len(s.status.Problems)}
}

// readFile decodes one file if its content changed.
func (s *Source) readFile(path string) {
	prev := s.files[path]
	data, err := readBounded(path)
	if err != nil {
		if prev == nil {
			prev = &fileState{good: map[manifest.Key]manifest.Object{}}
			s.files[path] = prev
		}
		prev.problems = []Problem{{File: path, Message: err.Error()}}
		// Forget the content's hash, so the file is decoded afresh (and
		// this problem cleared) when it can be read again, even unchanged.
		prev.sum = [sha256.Size]byte{}
		s.opts.Logger.Error("reading manifest; keeping its last good objects", "file", path, "err", err)
		return
	}
	sum := sha256.Sum256(data)
	if prev != nil && prev.sum == sum {
		return
	}
	next := &fileState{sum: sum, good: map[manifest.Key]manifest.Object{}}
	d := manifest.Decode(path, data)
	for _, b := range d.Broken {
		next.problems = append(next.problems, Problem{File: path, Message: b.Error()})
	}
	for _, inv := range d.Invalid {
		key := manifest.Key{Kind: inv.Kind, Ref: inv.Ref}
		next.problems = append(next.problems, Problem{File: path, Object: key.String(), Message: inv.Error()})
	}
	switch {
	case len(d.Broken) > 0 && prev != nil:
		// Which objects the file holds is unknown: keep them all.
		next.good = prev.good
	default:
		for _, o := range d.Objects {
			next.good[o.Key] = o
		}
		if prev != nil {
			for _, inv := range d.Invalid {
				key := manifest.Key{Kind: inv.Kind, Ref: inv.Ref}
				if o, ok := prev.good[key]; ok {
					next.good[key] = o
				}
			}
		}
	}
	for _, p := range next.problems {
		s.opts.Logger.Error("invalid manifest; the last good version stays in force",
			"file", p.File, "object", p.Object, "err", p.Message)
	}
	if len(next.problems) == 0 {
		s.opts.Logger.Info("manifest loaded", "file", path, "objects", len(next.good))
	}
	s.files[path] = next
}

// readBounded reads a file of at most maxFileSize bytes; the bound holds
// even for a file that grows while it is read.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// apply works out the objects all files declare together and applies the
// difference from what is in the store.
func (s *Source) apply() {
	var problems []Problem
	paths := make([]string, 0, len(s.files))
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	want := map[manifest.Key]manifest.Object{}
	from := map[manifest.Key]string{}
	for _, p := range paths {
		f := s.files[p]
		problems = append(problems, f.problems...)
		keys := make([]manifest.Key, 0, len(f.good))
		for k := range f.good {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b manifest.Key) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if other, dup := from[k]; dup {
				problems = append(problems, Problem{File: p, Object: k.String(),
					Message: fmt.Sprintf("%s: %s: also declared in %s, which is in force", p, k, other)})
				continue
			}
			want[k], from[k] = f.good[k], p
		}
	}
	c := manifest.Diff(s.applied, want)
	if err := s.opts.Store.Apply(SourceName, c); err != nil {
		refused, refusedProblems := storeProblems(err, from)
		problems = append(problems, refusedProblems...)
		// Refused objects are tried again at the next sync, so they take
		// effect once whatever blocked them is gone.
		for k := range refused {
			delete(want, k)
		}
		s.opts.Logger.Error("manifest objects not applied", "err", err)
	}
	s.applied = want
	s.origin = from
	s.status.Files = len(s.files)
	s.status.Objects = len(want)
	s.status.LastSync = time.Now()
	s.status.Problems = problems
}

// storeProblems reports the objects the store refused, by the file that
// declared them.
func storeProblems(err error, from map[manifest.Key]string) (map[manifest.Key]bool, []Problem) {
	refused := map[manifest.Key]bool{}
	var out []Problem
	for _, e := range model.Unjoin(err) {
		var oe *model.ObjectError
		if errors.As(e, &oe) {
			k := manifest.Key{Kind: oe.Kind, Ref: oe.Ref}
			refused[k] = true
			out = append(out, Problem{File: from[k], Object: k.String(), Message: from[k] + ": " + oe.Error()})
			continue
		}
		out = append(out, Problem{Message: e.Error()})
	}
	return refused, out
}
