package pod

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/perm"
)

// Migrate gives the pods of an older data dir (version 1: 0711 directories,
// 0644 files; version 2: pod dirs 0750) the modes of docs/security.md:
// pods/, the state dirs and the files at the pods' top level are shared
// with the skiff group, the pod dirs only searchable by it (0710, so that
// no member can open and flock one); stage1/ and overlay/ become
// root-only. Pods keep running meanwhile: their locks are on open fds.
func Migrate(dataDir string) error {
	pods := PodsDir(dataDir)
	if _, err := os.Lstat(pods); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := perm.Shared(pods); err != nil {
		return fmt.Errorf("migrate pods: %w", err)
	}
	for _, s := range States {
		sd := filepath.Join(pods, string(s))
		ents, err := os.ReadDir(sd)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("migrate pods: %w", err)
		}
		if err := perm.Shared(sd); err != nil {
			return fmt.Errorf("migrate pods: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() {
				// A pod may move to another state meanwhile: its new place
				// is migrated when that state dir is read, or was already.
				if err := migratePod(filepath.Join(sd, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("migrate pod %s: %w", e.Name(), err)
				}
			}
		}
	}
	return nil
}

func migratePod(dir string) error {
	if err := perm.Searchable(dir); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		switch {
		case e.Name() == Stage1Dir || e.Name() == OverlayDir:
			err = perm.Private(p)
		case e.Type().IsRegular():
			err = perm.Shared(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}
