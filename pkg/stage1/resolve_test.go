package stage1

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
	"github.com/skiffpod/skiff/pkg/store"
)

// stubACI is the stub stage1 image, built once by TestMain.
var stubACI string

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stage1-test-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(dir)
	if stubACI, err = stage1test.Stub(dir); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}

// errByRef marks a stage1 left to Resolver.Image.
var errByRef = errors.New("by ref")

// newResolver returns a resolver over a new store whose short names are
// found in a dir holding the stub as stage1-stub.aci, and records what it
// left to Image.
func newResolver(t *testing.T) (*Resolver, *[]string) {
	t.Helper()
	base := t.TempDir()
	s, err := store.Open(filepath.Join(base, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "lib")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(stubACI)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "stage1-stub.aci"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var byRef []string
	return &Resolver{Store: s, Dirs: []string{filepath.Join(base, "empty"), dir},
		Image: func(_ context.Context, ref string) (string, []string, error) {
			byRef = append(byRef, ref)
			return "", nil, errByRef
		}}, &byRef
}

// Resolve finds a short name's image in its dirs and a path as given,
// imports either (trusted by location), and leaves anything else to
// Image, the caller's fetch and run policy check.
func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		ref       func(lib string) string
		wantByRef bool
		wantErr   string // "" for the stub's ID
	}{
		{"short name", func(string) string { return "stub" }, false, ""},
		{"absolute path", func(lib string) string { return filepath.Join(lib, "stage1-stub.aci") }, false, ""},
		{"image name", func(string) string { return "example.com/stage1:1.0" }, true, ""},
		{"image ID", func(string) string { return "sha512-0123" }, true, ""},
		{"URL", func(string) string { return "https://example.com/stage1.aci" }, true, ""},
		{"unknown short name", func(string) string { return "nope" }, false, `stage1 "nope": no stage1-nope.aci in `},
		{"missing file", func(lib string) string { return filepath.Join(lib, "missing.aci") }, false, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, byRef := newResolver(t)
			ref := tt.ref(r.Dirs[1])
			id, layers, err := r.Resolve(context.Background(), ref)
			switch {
			case tt.wantByRef:
				if !errors.Is(err, errByRef) || !slices.Equal(*byRef, []string{ref}) {
					t.Errorf("Resolve(%q) = %v, Image called with %q; want it left to Image", ref, err, *byRef)
				}
				return
			case len(*byRef) > 0:
				t.Errorf("Resolve(%q) called Image with %q", ref, *byRef)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("Resolve(%q) = %v, want an error with %q", ref, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", ref, err)
			}
			img, err := r.Store.Get(id)
			if err != nil || img.Name != stage1test.StubName {
				t.Errorf("Resolve(%q) = %s, which the store has as %q (%v), want the stub", ref, id, img.Name, err)
			}
			if !slices.Equal(layers, []string{id}) {
				t.Errorf("layers = %q, want [%s]", layers, id)
			}
		})
	}
}

// A stage1 file is imported once per path, size and mtime: the same file
// again is not read, a changed one is.
func TestResolveCachesFileImports(t *testing.T) {
	r, _ := newResolver(t)
	ctx := context.Background()
	id, _, err := r.Resolve(ctx, "stub")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(r.Dirs[1], "stage1-stub.aci")
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// Garbage of the same size and mtime: only a cache hit still works.
	if err := os.WriteFile(path, make([]byte, fi.Size()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	if got, _, err := r.Resolve(ctx, "stub"); err != nil || got != id {
		t.Fatalf("same file again: Resolve = %s, %v; want the cached %s", got, err, id)
	}
	// A new mtime: read again, and the garbage is refused.
	later := fi.ModTime().Add(time.Second)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if got, _, err := r.Resolve(ctx, "stub"); err == nil {
		t.Errorf("changed file: Resolve = %s, want the import of the new content to fail", got)
	}
}
