package stage1

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/skiffpod/skiff/pkg/fetch"
	"github.com/skiffpod/skiff/pkg/store"
)

// SystemDir is where `make install` puts the default stage1 images.
const SystemDir = "/usr/lib/skiff"

// DefaultDirs are where the images of short stage1 names are looked for:
// beside the running binary, then SystemDir.
func DefaultDirs() []string {
	var dirs []string
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	return append(dirs, SystemDir)
}

// FromDirs returns the path of the stage1 image file name in the first of
// dirs that has it (rkt's --stage1-from-dir).
func FromDirs(dirs []string, name string) (string, error) {
	if name == "" || strings.Contains(name, "/") || name == "." || name == ".." {
		return "", fmt.Errorf("stage1 file %q: want a file name", name)
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("stage1 file %s: not in %s", name, strings.Join(dirs, " or "))
}

// Resolver turns what --stage1 says (a short name such as ns or kvm, a
// path, a name, a URL or an image ID) into a stage1 image in the store.
type Resolver struct {
	Store *store.Store
	// Dirs are searched in order for stage1-NAME.aci, the image of a
	// short name NAME (see DefaultDirs).
	Dirs []string
	// Image fetches a stage1 given by name, URL or image ID and checks it
	// against the run policy as any image: it returns its ID and its
	// checked layers (the image first, then its dependencies).
	Image func(ctx context.Context, ref string) (id string, layers []string, err error)
	Log   *slog.Logger
}

// Resolve returns the ID and layers of the stage1 ref names, importing a
// local stage1 file (a short name's image, or a path) the first time and
// whenever that file changes.
//
// A stage1 by name, URL or image ID is left to r.Image, which applies the
// run policy; one from a file is trusted by location (docs/stage1-abi.md).
func (r *Resolver) Resolve(ctx context.Context, ref string) (string, []string, error) {
	path, short := "", false
	if strings.HasPrefix(ref, "sha512-") {
		if id, ok := r.fromFile(ref); ok {
			return r.layers(id)
		}
	} else {
		var err error
		if path, short, err = r.defaultImage(ref); err != nil {
			return "", nil, err
		}
	}
	if !short {
		if !fetch.IsPath(ref) {
			return r.Image(ctx, ref)
		}
		path = ref
	}
	var err error
	if path, err = filepath.Abs(path); err != nil {
		return "", nil, fmt.Errorf("stage1 %s: %w", ref, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", nil, fmt.Errorf("stage1 %s: %w", ref, err)
	}
	// A stage1 from a local file (the defaults beside the binary, or a path
	// the user gave) is trusted by location, as the skiff binary itself is:
	// running it is the same act as running a program by path. Names and
	// URLs are fetched and verified like any image. Imports are cached by
	// path, size and mtime.
	key := fileKey(path, fi)
	if rec, ok, err := r.Store.Remote(key); err == nil && ok {
		if _, err := r.Store.Get(rec.ID); err == nil {
			return r.layers(rec.ID)
		}
	}
	file, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("stage1 %s: %w", ref, err)
	}
	defer file.Close()
	id, err := r.Store.Import(ctx, file, store.ImportOptions{Source: path})
	if err != nil {
		return "", nil, fmt.Errorf("import stage1 %s: %w", path, err)
	}
	if err := r.Store.SetRemote(key, store.RemoteRecord{ID: id}); err != nil && r.Log != nil {
		r.Log.Warn("cache stage1 import", "err", err)
	}
	return r.layers(id)
}

func fileKey(path string, fi os.FileInfo) string {
	return fmt.Sprintf("stage1:%s?size=%d&mtime=%d", path, fi.Size(), fi.ModTime().UnixNano())
}

// fromFile returns the full ID of the stored image that the image ID (or
// ID prefix) ref names when that image is what a local stage1 file, still
// unchanged where it was imported from, imports as: such an image is
// trusted by location as the file is (`--stage1=ns` and
// `--stage1=sha512-…` of the same image are the same act). Any other ID
// is left to the run policy.
func (r *Resolver) fromFile(ref string) (string, bool) {
	img, err := r.Store.Get(ref)
	if err != nil || !filepath.IsAbs(img.Source) {
		return "", false
	}
	fi, err := os.Stat(img.Source)
	if err != nil {
		return "", false
	}
	rec, ok, err := r.Store.Remote(fileKey(img.Source, fi))
	if err != nil || !ok || rec.ID != img.ID {
		return "", false
	}
	return img.ID, true
}

// defaultImage returns the path of the image of a short name such as "ns"
// or "kvm": stage1-NAME.aci in the first of r.Dirs that has it. ok is false
// when name is not a short name.
func (r *Resolver) defaultImage(name string) (path string, ok bool, err error) {
	if name == "" || strings.ContainsAny(name, "/.:") {
		return "", false, nil
	}
	file := "stage1-" + name + ".aci"
	for _, d := range r.Dirs {
		p := filepath.Join(d, file)
		if _, err := os.Stat(p); err == nil {
			return p, true, nil
		}
	}
	return "", true, fmt.Errorf("stage1 %q: no %s in %s (run `make build`, or `make install`)", name, file, strings.Join(r.Dirs, " or "))
}

// layers returns the layers of a stage1 imported from a file: its
// dependencies are resolved once, here, as the run policy check does for
// other images.
func (r *Resolver) layers(id string) (string, []string, error) {
	deps, err := r.Store.Dependencies(id)
	if err != nil {
		return "", nil, err
	}
	layers := []string{id}
	for _, d := range deps {
		layers = append(layers, d.ID)
	}
	return id, layers, nil
}
