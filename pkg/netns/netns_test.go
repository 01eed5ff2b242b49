package netns

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Paths that are not network namespaces, checked without root.
func TestNotANamespace(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	empty := filepath.Join(dir, "empty")
	link := filepath.Join(dir, "link")
	os.WriteFile(file, []byte("x"), 0o644)
	os.WriteFile(empty, nil, 0o644)
	os.Symlink(file, link)
	cases := []struct {
		name    string
		path    string
		remove  error // want from Remove; nil means removed (or nothing there)
		removed bool
	}{
		{"missing", filepath.Join(dir, "missing"), nil, true},
		{"non-empty file", file, ErrNotNetns, false},
		{"symlink", link, ErrNotNetns, false},
		{"directory", dir, ErrNotNetns, false},
		{"empty placeholder", empty, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Check(c.path); err == nil {
				t.Errorf("Check(%s) = nil, want an error", c.path)
			}
			if err := Do(c.path, func() error { t.Error("fn ran"); return nil }); err == nil {
				t.Errorf("Do(%s) = nil, want an error", c.path)
			}
			if err := Remove(c.path); !errors.Is(err, c.remove) || (c.remove == nil) != (err == nil) {
				t.Errorf("Remove(%s) = %v, want %v", c.path, err, c.remove)
			}
			if _, err := os.Lstat(c.path); (err != nil) != c.removed {
				t.Errorf("after Remove(%s): Lstat %v, want removed %v", c.path, err, c.removed)
			}
		})
	}
}
