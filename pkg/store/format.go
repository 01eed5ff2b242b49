package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/perm"
)

// Format is the version of the on-disk layout this skiff writes, kept in
// DIR/format. Version 1, the first release, had no format file: its
// directories were 0755 and its trees had no hash. Version 2 added modes
// and tree hashes, but its pod dirs were 0750, so a skiff group member
// could open and flock them. Version 3 makes them 0710 (pkg/pod.Migrate)
// and may hold OCI images (sha256- records, cas/layer, cas/blobs/sha256),
// which a version 2 skiff would take for stray files: it refuses the store.
const Format = 3

const formatFile = "format"

// ReadFormat returns the format version of the data dir: 0 when it has no
// format file (a version 1 store, or no store yet). A version newer than
// Format is refused with ErrFormat.
func ReadFormat(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, formatFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read store format: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || v < 2 {
		return 0, fmt.Errorf("%w: format file says %q", ErrFormat, strings.TrimSpace(string(b)))
	}
	if v > Format {
		return 0, fmt.Errorf("%w: format %d is newer than this skiff's %d", ErrFormat, v, Format)
	}
	return v, nil
}

// migrate brings an older store (or none) to the current format: the
// modes and owners of docs/security.md on everything the store holds, and
// a hash for every rendered tree. The hash is that of a fresh render of
// the blob, so a tree damaged before the migration fails fsck after it.
// The format file is written last: an interrupted migration runs again.
func (s *Store) migrate(ctx context.Context) error {
	if err := s.mkdirs(); err != nil {
		return err
	}
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	for _, d := range layout {
		set := perm.Private
		if d.shared {
			set = perm.Shared
		}
		if err := set(s.layoutPath(d.path)); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		dir string
		set func(string) error
	}{
		{"cas/images", perm.Shared},
		{"cas/blobs/sha512", perm.Private},
		{"cas/remotes", perm.Private},
		{"cas/tree", perm.Private},
	} {
		ents, err := os.ReadDir(filepath.Join(s.dir, d.dir))
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Type()&os.ModeSymlink != 0 {
				continue // not ours; fsck reports it
			}
			if err := d.set(filepath.Join(s.dir, d.dir, e.Name())); err != nil {
				return err
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(s.cas, "tree"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		id := e.Name()
		if !validID(id) || !e.IsDir() {
			continue
		}
		if _, err := os.Lstat(filepath.Join(s.treePath(id), treeHashFile)); err == nil {
			continue
		}
		sum, err := s.renderHash(ctx, id)
		if err != nil {
			s.log.Warn("migrate: cannot hash tree; fsck will report it", "id", id, "err", err)
			continue
		}
		if err := perm.WriteFile(filepath.Join(s.treePath(id), treeHashFile), []byte(sum+"\n"), false); err != nil {
			return err
		}
		s.log.Info("migrate: recorded tree hash", "id", id)
	}
	if err := perm.WriteFile(filepath.Join(s.dir, formatFile), []byte(strconv.Itoa(Format)+"\n"), true); err != nil {
		return err
	}
	return syncDir(s.dir)
}

// renderHash renders image id into a temp dir and returns the tree hash
// of that render.
func (s *Store) renderHash(ctx context.Context, id string) (string, error) {
	if _, err := s.readRecord(id); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.cas, "tree"), ".tmp-"+id+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := s.extractBlob(ctx, id, tmp); err != nil {
		return "", err
	}
	return TreeHash(tmp)
}
