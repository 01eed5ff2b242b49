package main

import (
	"os"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/store"
)

// migrateDataDir brings a data dir of an earlier format (none: the first
// release; 2: pod dirs a member could lock) to the current one when root
// opens it: the pods first, then the
// store, whose format file is written last, so an interrupted migration
// runs again. See docs/security.md.
func migrateDataDir(g *globals) error {
	if os.Geteuid() != 0 {
		return nil
	}
	v, err := store.ReadFormat(g.dir)
	if err != nil || v == store.Format {
		return err
	}
	if _, err := os.Stat(g.dir); err != nil {
		return nil // a new data dir: created in the current format when used
	}
	g.log.Info("migrating data dir to the current format", "dir", g.dir)
	if err := pod.Migrate(g.dir); err != nil {
		return err
	}
	ms, err := mount.Under(pod.PodsDir(g.dir))
	if err != nil {
		return err
	}
	for _, m := range ms {
		if err := mount.Harden(m); err != nil {
			return err
		}
	}
	_, err = store.Open(g.dir, g.log)
	return err
}
