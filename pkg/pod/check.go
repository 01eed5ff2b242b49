package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/uuid"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/perm"
)

// Problem is one inconsistency Check found in the pods.
type Problem struct {
	UUID     string `json:"uuid,omitempty"`
	Path     string `json:"path"`
	What     string `json:"problem"`
	Repaired bool   `json:"repaired"`
}

// CheckOptions adjust Check.
type CheckOptions struct {
	// Images returns the image IDs pod p uses, and HasImage whether the
	// store has one; a pod that uses a missing image is reported.
	Images   func(p *Pod) []string
	HasImage func(id string) bool
	// Repair fixes what is safe: modes of pod dirs and their metadata,
	// mounts left behind by pods that no longer run.
	Repair bool
}

// Check inspects every pod directory: stray entries in the state dirs,
// modes (docs/security.md), the pod manifest, mounts left under pods that
// nobody runs, and images the pods use that the store lacks.
func Check(dataDir string, o CheckOptions) ([]Problem, error) {
	var probs []Problem
	report := func(p Problem, fix func() error) error {
		if o.Repair && fix != nil {
			if err := fix(); err != nil {
				return fmt.Errorf("repair %s: %w", p.Path, err)
			}
			p.Repaired = true
		}
		probs = append(probs, p)
		return nil
	}
	ents, err := os.ReadDir(PodsDir(dataDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check pods: %w", err)
	}
	for _, e := range ents {
		if !slices.Contains(States, State(e.Name())) {
			probs = append(probs, Problem{Path: filepath.Join(PodsDir(dataDir), e.Name()), What: "stray entry in the pods dir"})
		}
	}
	if what := perm.Differs(PodsDir(dataDir), true); what != "" {
		if err := report(Problem{Path: PodsDir(dataDir), What: what}, func() error { return perm.Shared(PodsDir(dataDir)) }); err != nil {
			return probs, err
		}
	}
	for _, s := range States {
		sd := filepath.Join(PodsDir(dataDir), string(s))
		ents, err := os.ReadDir(sd)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return probs, fmt.Errorf("check pods: %w", err)
		}
		if what := perm.Differs(sd, true); what != "" {
			if err := report(Problem{Path: sd, What: what}, func() error { return perm.Shared(sd) }); err != nil {
				return probs, err
			}
		}
		for _, e := range ents {
			if !e.IsDir() || uuid.Validate(e.Name()) != nil {
				probs = append(probs, Problem{Path: filepath.Join(sd, e.Name()), What: "stray entry in a state dir"})
				continue
			}
			p := &Pod{UUID: e.Name(), State: s, dataDir: dataDir}
			if err := p.check(o, report); err != nil {
				return probs, err
			}
		}
	}
	return probs, nil
}

func (p *Pod) check(o CheckOptions, report func(Problem, func() error) error) error {
	ents, err := os.ReadDir(p.Path())
	if err != nil {
		return fmt.Errorf("check pod %s: %w", p.UUID, err)
	}
	// The pod dir must be searchable only; the files in it are stage0's metadata
	// (shared) or what a stage1 wrote there (pid, a console log): none
	// may be writable or executable by anyone but root.
	wrong := perm.DiffersSearchable(p.Path())
	for _, e := range ents {
		if wrong != "" || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.Mode().Perm()&^0o644 != 0 {
			wrong = fmt.Sprintf("%s: mode %04o, want at most 0644", e.Name(), fi.Mode().Perm())
		}
	}
	if wrong != "" {
		if err := report(Problem{UUID: p.UUID, Path: p.Path(), What: wrong}, func() error { return migratePod(p.Path()) }); err != nil {
			return err
		}
	}
	for _, d := range []string{Stage1Dir, OverlayDir} {
		if what := perm.Differs(p.File(d), false); what != "" && !errors.Is(statErr(p.File(d)), os.ErrNotExist) {
			if err := report(Problem{UUID: p.UUID, Path: p.File(d), What: what}, func() error { return perm.Private(p.File(d)) }); err != nil {
				return err
			}
		}
	}
	switch p.State {
	case Prepared, Running, ExitedGarbage:
		if _, err := os.Lstat(p.File(ManifestFile)); err != nil {
			if err := report(Problem{UUID: p.UUID, Path: p.File(ManifestFile), What: "pod manifest missing"}, nil); err != nil {
				return err
			}
		}
	}
	if p.State != Garbage && o.Images != nil && o.HasImage != nil {
		for _, id := range o.Images(p) {
			if !o.HasImage(id) {
				if err := report(Problem{UUID: p.UUID, Path: p.Path(), What: "uses image " + id + ", which is not in the store"}, nil); err != nil {
					return err
				}
			}
		}
	}
	// Prepared and run pods (running or exited) and marked ones keep their
	// mounts until removed; garbage and an unlocked embryo or preparing
	// pod (a crashed prepare) have none but leftovers.
	switch p.State {
	case Prepared, Running, ExitedGarbage:
		return nil
	}
	locked, err := p.IsLocked()
	if err != nil || locked {
		return err
	}
	if p.State != Garbage {
		// A prepare holds the lock from create to prepared: this one crashed.
		if err := report(Problem{UUID: p.UUID, Path: p.Path(), What: "abandoned " + string(p.State) + " pod; 'skiff gc' removes it"}, nil); err != nil {
			return err
		}
	}
	ms, err := mount.Under(p.Path())
	if err != nil || len(ms) == 0 {
		return err
	}
	fix := func() error {
		if err := p.TryLock(); err != nil {
			return err
		}
		defer p.Unlock()
		return mount.UnmountAll(p.Path())
	}
	return report(Problem{UUID: p.UUID, Path: p.Path(), What: fmt.Sprintf("%d mount(s) left over in a %s pod", len(ms), p.State)}, fix)
}

func statErr(path string) error {
	_, err := os.Lstat(path)
	return err
}
