package ca

import (
	"fmt"
	"maps"
	"time"

	"github.com/weftmesh/weft/internal/identity"
)

// Root rotation with no downtime, each step persisted so a restart resumes:
//
//	PrepareRotation: a new root (and intermediate) joins the bundle; the old
//	                 one still signs. Push the bundle to every proxy.
//	ActivateNewRoot: the new intermediate signs. Renew every proxy (RenewNow).
//	FinishRotation:  the old root leaves the bundle once no live leaf chains
//	                 to it.

// RotationPhase is "" (no rotation), "prepared" or "activated".
func (c *CA) RotationPhase() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case len(c.gens) < 2:
		return ""
	case c.active == c.gens[0]:
		return "prepared"
	default:
		return "activated"
	}
}

// PrepareRotation makes a new root and intermediate and adds the root to the
// bundle; signing stays with the old root.
func (c *CA) PrepareRotation() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provided {
		return fmt.Errorf("%w: %w: replace its files (put both roots in ca.crt) to rotate", ErrRotation, ErrProvided)
	}
	if len(c.gens) > 1 {
		return fmt.Errorf("%w: already in progress", ErrRotation)
	}
	undo := c.checkpoint()
	g, err := c.newGeneration(c.next)
	if err != nil {
		undo()
		return fmt.Errorf("%w: %w", ErrRotation, err)
	}
	return c.commit(append(c.gens[:1:1], g), c.active, c.next+1, nil, undo)
}

// ActivateNewRoot makes the new root's intermediate sign from now on.
func (c *CA) ActivateNewRoot() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gens) != 2 || c.active != c.gens[0] {
		return fmt.Errorf("%w: activate: no prepared rotation", ErrRotation)
	}
	return c.commit(c.gens, c.gens[1], c.next, nil, c.checkpoint())
}

// FinishRotation removes the old root from the bundle and deletes its keys.
// It refuses while live leaves still chain to the old root, unless force.
func (c *CA) FinishRotation(force bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.gens) != 2 || c.active != c.gens[1] {
		return fmt.Errorf("%w: finish: the new root is not active yet", ErrRotation)
	}
	old := c.gens[0]
	if n := c.liveLeavesLocked(old.root); n > 0 && !force {
		last := time.Time{}
		for _, t := range c.leaves[identity.Fingerprint(old.root)] {
			if t.After(last) {
				last = t
			}
		}
		return fmt.Errorf("%w: finish: %d live leaves still chain to the old root (the last expires at %s); renew them or force",
			ErrRotation, n, last.UTC().Format(time.RFC3339))
	}
	if err := c.commit([]*generation{c.gens[1]}, c.gens[1], c.next, old, c.checkpoint()); err != nil {
		return err
	}
	delete(c.leaves, identity.Fingerprint(old.root))
	return nil
}

// commit persists a new bundle and active generation, with drop's keys
// gone when it is not nil, then applies it. If that fails, undo puts the
// stored files back as they were.
func (c *CA) commit(gens []*generation, active *generation, next int, drop *generation, undo func()) error {
	prevGens, prevActive, prevNext := c.gens, c.active, c.next
	c.gens, c.active, c.next = gens, active, next
	c.bundleVersion++
	err := c.writeState()
	if err == nil && drop != nil {
		for _, kind := range []string{"root", "intermediate"} {
			for _, ext := range []string{"key", "crt"} {
				c.keys.remove(genFile(kind, drop.n, ext))
			}
		}
	}
	if err == nil && c.persist != nil {
		err = c.persist(c.filesLocked())
	}
	if err != nil {
		c.gens, c.active, c.next = prevGens, prevActive, prevNext
		c.bundleVersion--
		undo()
		return fmt.Errorf("%w: %w", ErrRotation, err)
	}
	c.syncRoots()
	return nil
}

// checkpoint returns what puts a CA kept in memory back to its files of
// now; a directory's are not taken back.
func (c *CA) checkpoint() func() {
	m, ok := c.keys.(*memStore)
	if !ok {
		return func() {}
	}
	saved := maps.Clone(m.files)
	return func() { m.files = saved }
}
