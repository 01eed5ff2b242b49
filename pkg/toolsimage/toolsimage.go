// Package toolsimage finds the tools image `skiff debug` mounts into an
// app (docs/debug.md): an ACI file (by default debug-tools.aci beside the
// skiff binary or in /usr/lib/skiff) imported into the store, or any image
// already in it (an OCI image too); its one tree, rendered or merged once
// in the store, is what the stage1 mounts, read-only.
package toolsimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/store"
)

// DefaultFile is the default tools image's file name (`make build` writes
// bin/debug-tools.aci, `make install` puts it in /usr/lib/skiff).
const DefaultFile = "debug-tools.aci"

// ErrNotTools means a file cannot serve as a tools image.
var ErrNotTools = errors.New("not a tools image")

// Default returns the path of DefaultFile in the first of dirs that has it.
func Default(dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, DefaultFile)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("tools image: no %s in %s (run `make build`, or `make install`)", DefaultFile, strings.Join(dirs, " or "))
}

// Rootfs imports the ACI file path into s (trusted by location, as a
// stage1 file is: the user named it) and returns its rendered rootfs. A
// tools image must stand alone: one with dependencies is refused, as
// nothing but its own tree is mounted.
func Rootfs(ctx context.Context, s *store.Store, path string) (string, error) {
	fail := func(err error) (string, error) { return "", fmt.Errorf("tools image %s: %w", path, err) }
	f, err := os.Open(path)
	if err != nil {
		return fail(err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return fail(fmt.Errorf("%w: not a regular file", ErrNotTools))
	}
	// Checked before the import, so that a refused file leaves nothing in
	// the store.
	m, err := manifest(f)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrNotTools, err))
	}
	if len(m.Dependencies) > 0 {
		return fail(fmt.Errorf("%w: it depends on %s; a tools image must stand alone", ErrNotTools, m.Dependencies[0].ImageName))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fail(err)
	}
	id, err := s.Import(ctx, f, store.ImportOptions{Source: path})
	if err != nil {
		return fail(fmt.Errorf("%w: %w", ErrNotTools, err))
	}
	return Tree(ctx, s, id)
}

// Tree returns the one tree of image id in s that the stage1 mounts: an
// ACI's rendered rootfs, an OCI image's layers merged (whiteouts applied)
// once into cas/tree. An ACI with dependencies is refused: nothing but its
// own tree would be mounted.
func Tree(ctx context.Context, s *store.Store, id string) (string, error) {
	fail := func(err error) (string, error) { return "", fmt.Errorf("tools image %s: %w", id, err) }
	m, err := s.Manifest(id)
	if err != nil {
		return fail(err)
	}
	if len(m.Dependencies) > 0 {
		return fail(fmt.Errorf("%w: it depends on %s; a tools image must stand alone", ErrNotTools, m.Dependencies[0].ImageName))
	}
	dirs, err := s.CopyDirs(ctx, []string{id})
	if err != nil {
		return fail(err)
	}
	if len(dirs) != 1 {
		return fail(fmt.Errorf("%w: %d trees, want one", ErrNotTools, len(dirs)))
	}
	return dirs[0], nil
}

func manifest(f *os.File) (*schema.ImageManifest, error) {
	r, err := aci.Decompress(f)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return aci.ReadManifest(r)
}
