package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	meshv1 "github.com/weftmesh/weft/api/mesh/v1"
	"github.com/weftmesh/weft/internal/model"
	"github.com/weftmesh/weft/internal/wire"
)

// stateFile is what the state path holds. Workloads are in the API's JSON
// form, whose field names are a compatibility promise, rather than the
// model's Go structs, whose are not.
type stateFile struct {
	Version int          `json:"version"`
	Leases  []stateLease `json:"leases"`
}

type stateLease struct {
	// ID is a bearer secret: the file is 0600 for it.
	ID         string          `json:"id"`
	TTLSeconds uint32          `json:"ttlSeconds"`
	Workload   json.RawMessage `json:"workload"`
}

const stateVersion = 1

// restore loads the saved registrations into the store, each with a fresh
// full TTL. A registration that is no longer valid, or whose workload
// another source now declares, is dropped with a log line rather than
// failing the start.
func (r *Registry) restore() error {
	raw, err := os.ReadFile(r.opts.StatePath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: read state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return fmt.Errorf("registry: state %s: %w", r.opts.StatePath, err)
	}
	if f.Version != stateVersion {
		return fmt.Errorf("registry: state %s: version %d, want %d", r.opts.StatePath, f.Version, stateVersion)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.opts.Now()
	var puts []*model.Workload
	for i, sl := range f.Leases {
		var pw meshv1.Workload
		if err := protojson.Unmarshal(sl.Workload, &pw); err != nil {
			r.log.Warn("dropping saved registration", "index", i, "err", err)
			continue
		}
		w, err := wire.WorkloadFromProto(&pw)
		if err != nil {
			r.log.Warn("dropping saved registration", "index", i, "err", err)
			continue
		}
		saved, err := encodeWorkload(w)
		if err != nil {
			return fmt.Errorf("registry: state %s: %w", r.opts.StatePath, err)
		}
		if sl.ID == "" || r.leases[sl.ID] != nil || r.byRef[w.Ref] != nil {
			r.log.Warn("dropping saved registration: duplicate", "workload", w.Ref.String())
			continue
		}
		// At least the default: the proxy may have been failing to renew
		// for as long as the control plane was down, and is backing off.
		ttl := min(max(r.opts.DefaultTTL, secondsDuration(sl.TTLSeconds)), r.opts.MaxTTL)
		l := &lease{id: sl.ID, workload: w, saved: saved, ttl: ttl, expires: now.Add(ttl)}
		r.leases[l.id] = l
		r.byRef[w.Ref] = l
		puts = append(puts, w)
	}
	// Conflicts are reported per object and the rest still apply; which
	// ones failed shows in who owns each workload now.
	_ = r.store.Apply(Source, model.Changes{PutWorkloads: puts})
	for ref, l := range r.byRef {
		if owner, _ := r.store.WorkloadOwner(ref); owner != Source {
			r.log.Warn("dropping saved registration: workload declared by another source", "workload", ref.String(), "owner", owner)
			delete(r.leases, l.id)
			delete(r.byRef, ref)
		}
	}
	r.log.Info("registrations restored", "count", len(r.leases), "path", r.opts.StatePath)
	if len(r.leases) != len(f.Leases) {
		// Nothing else runs yet: write in place rather than through save.
		if err := writeFileAtomic(r.opts.StatePath, r.encodeLocked()); err != nil {
			return fmt.Errorf("registry: state %s: %w", r.opts.StatePath, err)
		}
	}
	return nil
}

// save makes the lease table as of generation gen (0: no change) durable
// before returning, if there is a state path. Writing happens outside mu
// so renewals never wait for a disk, and concurrent changes share a
// write: whoever writes takes the newest table, and those waiting behind
// find their generation already on disk.
//
// A failed save is logged, not returned: the change itself happened, the
// next one writes the whole file again, and at worst a restart forgets a
// lease, which its proxy answers by registering again.
func (r *Registry) save(gen uint64) {
	if r.opts.StatePath == "" || gen == 0 {
		return
	}
	r.saveMu.Lock()
	defer r.saveMu.Unlock()
	if r.savedGen >= gen {
		return
	}
	r.mu.Lock()
	data, cur := r.encodeLocked(), r.gen
	r.mu.Unlock()
	if err := writeFileAtomic(r.opts.StatePath, data); err != nil {
		r.log.Error("saving registrations", "path", r.opts.StatePath, "err", err)
		return
	}
	r.savedGen = cur
}

// encodeLocked renders the lease table as the state file holds it.
func (r *Registry) encodeLocked() []byte {
	leases := make([]*lease, 0, len(r.leases))
	for _, l := range r.leases {
		leases = append(leases, l)
	}
	slices.SortFunc(leases, func(a, b *lease) int {
		return model.CompareRefs(a.workload.Ref, b.workload.Ref)
	})
	f := stateFile{Version: stateVersion, Leases: make([]stateLease, 0, len(leases))}
	for _, l := range leases {
		f.Leases = append(f.Leases, stateLease{ID: l.id, TTLSeconds: seconds(l.ttl), Workload: l.saved})
	}
	// Only strings, numbers and JSON that protojson made: this cannot fail.
	raw, _ := json.Marshal(f)
	return raw
}

// encodeWorkload renders a workload in the API's JSON form.
func encodeWorkload(w *model.Workload) ([]byte, error) {
	raw, err := protojson.Marshal(wire.WorkloadToProto(w))
	if err != nil {
		return nil, fmt.Errorf("encode workload %s: %w", w.Ref, err)
	}
	return raw, nil
}

// writeFileAtomic replaces path with data, so a crash leaves the old file
// or the new one, never half of one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// Make the rename itself durable.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func secondsDuration(s uint32) time.Duration { return time.Duration(s) * time.Second }
