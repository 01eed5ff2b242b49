package store

import (
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/perm"
)

// maxLayers bounds a dependency list, which diamonds could otherwise blow up.
const maxLayers = 256

// Layer is one rendered image of a dependency stack.
type Layer struct {
	ID  string
	Dir string // the rendered rootfs directory
}

// Render renders image id (its own tar, not its dependencies) once into
// cas/tree/<id> and returns that directory. A render is built in a temp
// directory, synced and renamed into place, so a tree that exists is
// complete; concurrent renders of one image race harmlessly for the rename.
func (s *Store) Render(ctx context.Context, id string) (string, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return "", err
	}
	defer unlock()
	dir, err := s.render(ctx, id)
	if err != nil {
		return "", fmt.Errorf("render image %s: %w", id, err)
	}
	return dir, nil
}

func (s *Store) render(ctx context.Context, id string) (string, error) {
	if rec, err := s.readRecord(id); err != nil {
		return "", err
	} else if rec.OCI != nil {
		return "", fmt.Errorf("%w: its layers are unpacked at fetch", ErrNotForOCI)
	}
	dst := s.treePath(id)
	if _, err := os.Lstat(dst); err == nil {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".tmp-"+id+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := s.extractBlob(ctx, id, tmp); err != nil {
		return "", err
	}
	sum, err := TreeHash(tmp)
	if err != nil {
		return "", err
	}
	if err := perm.WriteFile(filepath.Join(tmp, treeHashFile), []byte(sum+"\n"), false); err != nil {
		return "", err
	}
	if err := perm.Private(tmp); err != nil {
		return "", err
	}
	if err := syncFS(tmp); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST) {
			return dst, nil // another render finished first
		}
		return "", err
	}
	s.log.Debug("rendered image", "id", id)
	return dst, syncDir(filepath.Dir(dst))
}

// extractBlob extracts image id into dir, checking the blob's hash on the way.
func (s *Store) extractBlob(ctx context.Context, id, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	f, err := os.Open(s.blobPath(id))
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha512.New()
	tee := io.TeeReader(ctxReader{ctx, f}, h)
	// Unprivileged stores (tests, rootless use) cannot keep owners.
	if _, err := aci.Extract(tee, root, aci.ExtractOptions{NoChown: os.Geteuid() != 0}); err != nil {
		return err
	}
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return err
	}
	if hashID(h.Sum(nil)) != id {
		return ErrCorrupt
	}
	return nil
}

func syncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}

// Layers renders image id and its dependencies and returns them top first:
// the image, then its dependencies, later ones above earlier ones, as
// appc orders them. An image needed twice appears once, at its lowest place,
// so it lies below everything that depends on it.
func (s *Store) Layers(ctx context.Context, id string) ([]Layer, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ids, err := s.resolve(id)
	if err != nil {
		return nil, fmt.Errorf("resolve dependencies of %s: %w", id, err)
	}
	if isOCIID(id) {
		dirs, err := s.ociLowerDirs(id, false)
		if err != nil {
			return nil, fmt.Errorf("layers of %s: %w", id, err)
		}
		layers := make([]Layer, len(dirs))
		for i, d := range dirs {
			layers[i] = Layer{ID: id, Dir: d}
		}
		return layers, nil
	}
	layers := make([]Layer, len(ids))
	for i, id := range ids {
		dir, err := s.render(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("render image %s: %w", id, err)
		}
		layers[i] = Layer{ID: id, Dir: filepath.Join(dir, "rootfs")}
	}
	return layers, nil
}

// LowerDirs renders image id and its dependencies and returns their rootfs
// directories, the image itself first: overlay lowerdirs, as pkg/prepare
// wants them.
func (s *Store) LowerDirs(ctx context.Context, id string) ([]string, error) {
	layers, err := s.Layers(ctx, id)
	if err != nil {
		return nil, err
	}
	dirs := make([]string, len(layers))
	for i, l := range layers {
		dirs[i] = l.Dir
	}
	return dirs, nil
}

// Trees renders exactly images ids, in the order given, and returns their
// rootfs directories: the layers a caller resolved (and checked) once, with
// no second resolution by name that an import in between could change. An
// OCI image contributes its layer trees, top first.
func (s *Store) Trees(ctx context.Context, ids []string) ([]string, error) {
	return s.trees(ctx, ids, false)
}

// CopyDirs is Trees for a pod whose trees are copied, not stacked by
// overlayfs (--no-overlay): an OCI image's layers carry whiteouts only
// overlayfs understands, so it gets its merged tree.
func (s *Store) CopyDirs(ctx context.Context, ids []string) ([]string, error) {
	return s.trees(ctx, ids, true)
}

func (s *Store) trees(ctx context.Context, ids []string, merged bool) ([]string, error) {
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var dirs []string
	for _, id := range ids {
		if isOCIID(id) {
			layers, err := s.ociLowerDirs(id, merged)
			if err != nil {
				return nil, fmt.Errorf("layers of %s: %w", id, err)
			}
			dirs = append(dirs, layers...)
			continue
		}
		dir, err := s.render(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("render image %s: %w", id, err)
		}
		dirs = append(dirs, filepath.Join(dir, "rootfs"))
	}
	return dirs, nil
}

// resolve returns the IDs of image id and its dependencies, top first.
func (s *Store) resolve(id string) ([]string, error) {
	imgs, err := s.list()
	if err != nil {
		return nil, err
	}
	var all []string
	onPath := map[string]bool{}
	var visit func(id string) error
	visit = func(id string) error {
		if onPath[id] {
			return fmt.Errorf("%w through %s", ErrDependencyCycle, id)
		}
		if len(all) >= maxLayers {
			return fmt.Errorf("more than %d layers", maxLayers)
		}
		onPath[id] = true
		defer delete(onPath, id)
		all = append(all, id)
		m, err := s.manifest(id)
		if err != nil {
			return err
		}
		// Later dependencies lie above earlier ones, so come first.
		for i := len(m.Dependencies) - 1; i >= 0; i-- {
			d := m.Dependencies[i]
			dep, err := findDep(imgs, d)
			if err != nil {
				return fmt.Errorf("%w: %s, needed by %s: %w", ErrMissingDependency, depString(d), m.Name, err)
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(id); err != nil {
		return nil, err
	}
	// Keep each image's last (lowest) place.
	var ids []string
	for i, id := range all {
		if !slices.Contains(all[i+1:], id) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func findDep(imgs []Image, d types.Dependency) (string, error) {
	if d.ImageID != nil && !d.ImageID.Empty() {
		img, err := lookup(imgs, d.ImageID.String())
		if err != nil {
			return "", err
		}
		if img.Name != string(d.ImageName) {
			return "", fmt.Errorf("%w: ID %s is named %q", ErrNotFound, img.ID, img.Name)
		}
		return img.ID, nil
	}
	labels := map[string]string{}
	for _, l := range d.Labels {
		labels[string(l.Name)] = l.Value
	}
	img, ok := newest(imgs, string(d.ImageName), labels)
	if !ok {
		return "", ErrNotFound
	}
	return img.ID, nil
}

func depString(d types.Dependency) string {
	s := string(d.ImageName)
	for _, l := range d.Labels {
		s += "," + string(l.Name) + "=" + l.Value
	}
	if d.ImageID != nil && !d.ImageID.Empty() {
		s += " (" + d.ImageID.String() + ")"
	}
	return s
}

// Extraction says what Extract writes.
type Extraction struct {
	// Dependencies merges the image's dependencies below it (rkt's image
	// render); without it the image's own rootfs alone (image extract).
	Dependencies bool
	// RootfsOnly makes dst the rootfs itself; else dst holds the image
	// manifest as "manifest" and the tree as "rootfs", as an ACI does.
	RootfsOnly bool
}

// Extract writes image id into dst, which must not exist or be an empty
// directory: its rootfs (merged with its dependencies' when asked) and,
// unless RootfsOnly, its manifest beside it. dst is made private (root's
// alone when run as root).
func (s *Store) Extract(ctx context.Context, id, dst string, how Extraction) error {
	var lowers []string
	if how.Dependencies {
		var err error
		if lowers, err = s.LowerDirs(ctx, id); err != nil {
			return fmt.Errorf("render image %s: %w", id, err)
		}
	}
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := s.readRecord(id)
	if err != nil {
		return fmt.Errorf("extract image: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".skiff-extract-")
	if err != nil {
		return fmt.Errorf("extract image %s: %w", id, err)
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	switch {
	case how.Dependencies:
		err = mergeLayers(rootfs, slices.Backward(lowers))
	case rec.OCI != nil:
		err = s.extractOCI(rec, rootfs)
	default:
		err = s.extractBlob(ctx, id, tmp) // manifest and rootfs, as in the ACI
	}
	if err != nil {
		return fmt.Errorf("extract image %s: %w", id, err)
	}
	// Owners and setuid bits are kept, so the tree is root's alone, as
	// the store's trees are: otherwise any host user could run an image's
	// setuid-root binary from it.
	if err := perm.Private(rootfs); err != nil {
		return fmt.Errorf("extract image %s: %w", id, err)
	}
	out := tmp
	if how.RootfsOnly {
		out = rootfs
	} else if _, err := os.Lstat(filepath.Join(tmp, "manifest")); err != nil {
		m, err := s.manifest(id)
		if err == nil {
			err = writeManifest(filepath.Join(tmp, "manifest"), m)
		}
		if err != nil {
			return fmt.Errorf("extract image %s: %w", id, err)
		}
	}
	if err := os.Rename(out, dst); err != nil {
		return fmt.Errorf("extract image %s: %w", id, err)
	}
	return nil
}

func writeManifest(path string, m *schema.ImageManifest) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}
