package store

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/perm"
)

// GCOptions adjust GC.
type GCOptions struct {
	// ImageGracePeriod, when positive, makes GC also remove images not kept
	// and neither used nor imported within this period.
	ImageGracePeriod time.Duration
}

// GC removes the rendered trees of images not in use (neither in the set
// inUse returns nor a dependency of one), and with opts.ImageGracePeriod
// whole images too (see the package doc), plus abandoned temp files. It
// calls inUse under the store's exclusive lock, so after every Hold has
// been released. It returns the IDs whose tree or image it removed.
func (s *Store) GC(ctx context.Context, inUse InUse, opts GCOptions) ([]string, error) {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return nil, err
	}
	defer unlock()
	used, err := inUse()
	if err != nil {
		return nil, fmt.Errorf("gc images: %w", err)
	}
	removed, err := s.gc(ctx, s.usedWithLayers(used), opts)
	if err != nil {
		return removed, fmt.Errorf("gc images: %w", err)
	}
	return removed, nil
}

func (s *Store) gc(ctx context.Context, keep func(id string) bool, opts GCOptions) ([]string, error) {
	imgs, err := s.list()
	if err != nil {
		return nil, err
	}
	kept := map[string]bool{}
	for _, img := range imgs {
		if !keep(img.ID) {
			continue
		}
		kept[img.ID] = true
		ids, err := s.resolve(img.ID)
		if err != nil { // a broken stack keeps what it is, GC cannot fix it
			s.log.Warn("gc: cannot resolve dependencies of kept image", "id", img.ID, "err", err)
		}
		for _, id := range ids {
			kept[id] = true
		}
	}
	var removed []string
	now := time.Now()
	for _, img := range imgs {
		if err := ctx.Err(); err != nil {
			return removed, err
		}
		if kept[img.ID] {
			continue
		}
		used := img.ImportedAt
		if img.LastUsedAt.After(used) {
			used = img.LastUsedAt
		}
		if opts.ImageGracePeriod > 0 && now.Sub(used) > opts.ImageGracePeriod {
			if err := s.remove(img.ID); err != nil {
				return removed, err
			}
			s.log.Info("gc: removed image", "id", img.ID, "name", img.Name)
			removed = append(removed, img.ID)
			continue
		}
		if _, err := os.Lstat(s.treePath(img.ID)); err == nil {
			if err := os.RemoveAll(s.treePath(img.ID)); err != nil {
				return removed, err
			}
			s.log.Info("gc: removed rendered tree", "id", img.ID, "name", img.Name)
			removed = append(removed, img.ID)
		}
	}
	if err := s.removeStale(); err != nil {
		return removed, err
	}
	return removed, s.removeUnreferenced(keep)
}

// removeStale removes renders a crash interrupted (none runs under the
// exclusive lock) and temp files older than tmpMaxAge (downloads in
// TmpDir run without the store lock).
func (s *Store) removeStale() error {
	trees, err := os.ReadDir(filepath.Join(s.cas, "tree"))
	if err != nil {
		return err
	}
	for _, e := range trees {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(s.cas, "tree", e.Name())); err != nil {
				return err
			}
		}
	}
	tmps, err := os.ReadDir(s.TmpDir())
	if err != nil {
		return err
	}
	for _, e := range tmps {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > tmpMaxAge {
			if err := os.RemoveAll(filepath.Join(s.TmpDir(), e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// Problem is one inconsistency Verify found.
type Problem struct {
	ID       string `json:"id,omitempty"` // the image concerned, if known
	Path     string `json:"path"`
	What     string `json:"problem"` // e.g. "corrupt blob", "orphan tree"
	Repaired bool   `json:"repaired"`
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s: %s", p.Path, p.What)
	if p.Repaired {
		s += " (repaired)"
	}
	return s
}

// Verify re-hashes every blob and rendered tree and checks that records,
// blobs and trees belong together: a record must say what its blob's
// manifest says, a tree must hash to the hash recorded when it was
// rendered. With repair it removes damaged images (whole), orphans and
// damaged or incomplete trees (they are rendered again when needed),
// except trees of images inUse returns (pods mount them; nil means none),
// and rewrites records from their blobs. The problems it returns are
// those it found, repaired or not.
func (s *Store) Verify(ctx context.Context, repair bool, inUse InUse) ([]Problem, error) {
	how := unix.LOCK_SH
	if repair {
		how = unix.LOCK_EX
	}
	unlock, err := s.lock(how)
	if err != nil {
		return nil, err
	}
	defer unlock()
	used := map[string]string{}
	if inUse != nil {
		if used, err = inUse(); err != nil {
			return nil, fmt.Errorf("verify store: %w", err)
		}
	}
	probs, err := s.verify(ctx, repair, used)
	if err != nil {
		return probs, fmt.Errorf("verify store: %w", err)
	}
	return probs, nil
}

func (s *Store) verify(ctx context.Context, repair bool, used map[string]string) ([]Problem, error) {
	var probs []Problem
	// fix is what repair does about a problem: remove a path or an image,
	// rewrite a record; nil when repair must leave it.
	report := func(p Problem, fix func() error) error {
		s.log.Warn("store problem", "path", p.Path, "problem", p.What)
		if repair && fix != nil {
			if err := fix(); err != nil {
				return err
			}
			p.Repaired = true
		}
		probs = append(probs, p)
		return nil
	}
	removePath := func(p string) func() error { return func() error { return os.RemoveAll(p) } }
	removeImage := func(id string) func() error { return func() error { return s.remove(id) } }

	for _, d := range layout {
		p := s.layoutPath(d.path)
		if what := perm.Differs(p, d.shared); what != "" {
			if err := report(Problem{Path: p, What: what}, func() error { return setClass(p, d.shared) }); err != nil {
				return probs, err
			}
		}
	}
	for _, f := range []struct {
		dir    string
		shared bool
	}{{"cas/images", true}, {"cas/blobs/sha512", false}, {"cas/blobs/sha256", false}, {"cas/layer", false}, {"cas/tree", false}, {"cas/remotes", false}} {
		ents, err := os.ReadDir(filepath.Join(s.dir, f.dir))
		if err != nil {
			return probs, err
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				continue // an incomplete tree, reported below
			}
			p := filepath.Join(s.dir, f.dir, e.Name())
			if what := perm.Differs(p, f.shared); what != "" {
				if err := report(Problem{Path: p, What: what}, func() error { return setClass(p, f.shared) }); err != nil {
					return probs, err
				}
			}
		}
	}

	recorded := map[string]bool{}
	recDir := filepath.Join(s.cas, "images")
	ents, err := os.ReadDir(recDir)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return probs, err
		}
		p := filepath.Join(recDir, e.Name())
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			if err := report(Problem{Path: p, What: "stray file"}, removePath(p)); err != nil {
				return probs, err
			}
			continue
		}
		recorded[id] = true
		var what string
		if _, err := s.readRecord(id); err != nil {
			what = "unreadable record"
		} else if sum, err := hashFile(s.blobPath(id), id); os.IsNotExist(err) {
			what = "missing blob"
		} else if err != nil {
			return probs, err
		} else if sum != id {
			what = "corrupt blob (hash " + sum[:len(idPrefix)+16] + "...)"
		} else if _, err := s.manifest(id); errors.Is(err, ErrRecordMismatch) {
			p := Problem{ID: id, Path: s.recordPath(id), What: err.Error()}
			if err := report(p, func() error { return s.rewriteRecord(id) }); err != nil {
				return probs, err
			}
			continue
		} else if err != nil {
			what = err.Error()
		}
		if what == "" {
			continue
		}
		fix := removeImage(id)
		if isOCIID(id) && s.usedWithLayers(used)(id) { // its layers are mounted
			what += "; in use by a pod, remove the pods that use it to repair"
			fix = nil
		}
		if err := report(Problem{ID: id, Path: s.blobPath(id), What: what}, fix); err != nil {
			return probs, err
		}
	}

	layerProbs, err := s.verifyLayers(ctx, repair, used)
	probs = append(probs, layerProbs...)
	if err != nil {
		return probs, err
	}

	blobDir := filepath.Join(s.cas, "blobs", "sha512")
	if ents, err = os.ReadDir(blobDir); err != nil {
		return probs, err
	}
	for _, e := range ents {
		id := idPrefix + e.Name()
		if validID(id) {
			if _, err := os.Lstat(s.recordPath(id)); err == nil {
				continue // checked above
			}
		}
		p := filepath.Join(blobDir, e.Name())
		if err := report(Problem{ID: id, Path: p, What: "orphan blob"}, removePath(p)); err != nil {
			return probs, err
		}
	}

	// Downloads run in tmp/ without the store lock: only old files are
	// leftovers.
	if ents, err = os.ReadDir(s.TmpDir()); err != nil {
		return probs, err
	}
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > tmpMaxAge {
			p := filepath.Join(s.TmpDir(), e.Name())
			if err := report(Problem{Path: p, What: "stale temp file"}, removePath(p)); err != nil {
				return probs, err
			}
		}
	}

	treeDir := filepath.Join(s.cas, "tree")
	if ents, err = os.ReadDir(treeDir); err != nil {
		return probs, err
	}
	for _, e := range ents {
		p := filepath.Join(treeDir, e.Name())
		var what string
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			what = "incomplete tree"
		case !recorded[e.Name()]:
			what = "orphan tree"
		default:
			parts := []string{"manifest", "rootfs"}
			if isOCIID(e.Name()) { // a merged tree
				parts = parts[1:]
			}
			for _, part := range parts {
				if _, err := os.Lstat(filepath.Join(p, part)); err != nil {
					what = "incomplete tree"
				}
			}
			if what == "" {
				what = checkTree(p)
			}
		}
		if what == "" {
			continue
		}
		id := e.Name()
		if !validID(id) {
			id = ""
		}
		fix := removePath(p)
		if _, ok := used[id]; ok {
			what += "; in use by a pod, remove the pods that use it to repair"
			fix = nil
		}
		if err := report(Problem{ID: id, Path: p, What: what}, fix); err != nil {
			return probs, err
		}
	}
	return probs, nil
}

func setClass(path string, shared bool) error {
	if shared {
		return perm.Shared(path)
	}
	return perm.Private(path)
}

// checkTree compares the tree at dir with the hash recorded at render
// time and says what is wrong, or "".
func checkTree(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, treeHashFile))
	if err != nil {
		return "tree without hash"
	}
	want := strings.TrimSpace(string(b))
	got, err := TreeHash(dir)
	if err != nil {
		return "unreadable tree: " + err.Error()
	}
	if got != want {
		return "damaged tree (hash " + got + ", rendered as " + want + ")"
	}
	return ""
}

// rewriteRecord writes image id's record again from the manifest in its
// blob, keeping times, source and signer.
func (s *Store) rewriteRecord(id string) error {
	rec, err := s.readRecord(id)
	if err != nil {
		return err
	}
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		return err
	}
	defer f.Close()
	m, err := aci.ReadManifest(f)
	if err != nil {
		return err
	}
	if rec.Manifest, err = json.Marshal(m); err != nil {
		return err
	}
	rec.Name, rec.Labels = string(m.Name), nil
	if len(m.Labels) > 0 {
		rec.Labels = map[string]string{}
		for _, l := range m.Labels {
			rec.Labels[string(l.Name)] = l.Value
		}
	}
	return s.writeJSON(s.recordPath(id), rec, true)
}

// hashFile returns the ID path's content would have, hashed as image id's
// kind is: sha512 for an ACI, sha256 for an OCI image.
func hashFile(path, id string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h, prefix := sha512.New(), idPrefix
	if isOCIID(id) {
		h, prefix = sha256.New(), ociIDPrefix
	}
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return prefix + hex.EncodeToString(h.Sum(nil)), nil
}
