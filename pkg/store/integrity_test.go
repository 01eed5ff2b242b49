package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

func TestTreeHash(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"bin/tool": "#!/bin/sh\n", "etc/conf": "a=1\n"}))
	dir, err := s.Render(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := os.ReadFile(filepath.Join(dir, treeHashFile))
	if err != nil {
		t.Fatal(err)
	}
	// Another render of the same blob hashes the same.
	again, err := s.renderHash(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(recorded)) != again {
		t.Fatalf("two renders hash %s and %s", recorded, again)
	}
	tests := []struct {
		name   string
		damage func(root string) error
	}{
		{"content", func(r string) error { return os.WriteFile(filepath.Join(r, "etc/conf"), []byte("a=2\n"), 0o644) }},
		{"setuid bit", func(r string) error { return os.Chmod(filepath.Join(r, "bin/tool"), 0o755|os.ModeSetuid) }},
		{"new file", func(r string) error { return os.WriteFile(filepath.Join(r, "etc/new"), nil, 0o644) }},
		{"removed file", func(r string) error { return os.Remove(filepath.Join(r, "etc/conf")) }},
		{"symlink", func(r string) error { return os.Symlink("/etc/shadow", filepath.Join(r, "etc/link")) }},
		{"fifo", func(r string) error { return unix.Mkfifo(filepath.Join(r, "etc/fifo"), 0o644) }},
		{"manifest", func(r string) error {
			return os.WriteFile(filepath.Join(filepath.Dir(r), "manifest"), []byte(`{}`), 0o644)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"bin/tool": "#!/bin/sh\n", "etc/conf": "a=1\n"}))
			dir, err := s.Render(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if what := checkTree(dir); what != "" {
				t.Fatalf("fresh tree: %s", what)
			}
			if err := tt.damage(filepath.Join(dir, "rootfs")); err != nil {
				t.Fatal(err)
			}
			if what := checkTree(dir); !strings.HasPrefix(what, "damaged tree") {
				t.Errorf("checkTree after damage = %q, want damaged tree", what)
			}
		})
	}
}

func TestVerifyTrees(t *testing.T) {
	for _, inUse := range []bool{false, true} {
		s := newStore(t)
		id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"f": "x"}))
		dir, err := s.Render(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "rootfs", "f"), []byte("y"), 0o644); err != nil {
			t.Fatal(err)
		}
		used := func() (map[string]string, error) {
			if inUse {
				return map[string]string{id: "pod test"}, nil
			}
			return nil, nil
		}
		probs, err := s.Verify(ctx, true, used)
		if err != nil || len(probs) != 1 || !strings.Contains(probs[0].What, "damaged tree") || probs[0].Repaired == inUse {
			t.Fatalf("in use %v: repair: %+v, %v", inUse, probs, err)
		}
		_, err = os.Stat(dir)
		if inUse != (err == nil) {
			t.Errorf("in use %v: tree after repair: %v", inUse, err)
		}
	}
}

func TestRecordMustMatchBlob(t *testing.T) {
	tests := []struct {
		name string
		edit func(r map[string]any)
	}{
		{"exec", func(r map[string]any) {
			r["manifest"].(map[string]any)["app"] = map[string]any{"exec": []string{"/evil"}, "user": "0", "group": "0"}
		}},
		{"name", func(r map[string]any) { r["name"] = "example.com/other" }},
		{"labels", func(r map[string]any) { r["labels"] = map[string]string{"version": "9"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			id := importTar(t, s, acitest.Image(t, "example.com/app", nil, `"labels":[{"name":"version","value":"1"}]`, `"app":{"exec":["/good"],"user":"0","group":"0"}`))
			b, err := os.ReadFile(s.recordPath(id))
			if err != nil {
				t.Fatal(err)
			}
			var r map[string]any
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			tt.edit(r)
			b, _ = json.Marshal(r)
			if err := os.WriteFile(s.recordPath(id), b, 0o640); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Manifest(id); !errors.Is(err, ErrRecordMismatch) {
				t.Errorf("Manifest of an edited record: %v, want ErrRecordMismatch", err)
			}
			if _, err := s.LowerDirs(ctx, id); !errors.Is(err, ErrRecordMismatch) {
				t.Errorf("LowerDirs of an edited record: %v, want ErrRecordMismatch", err)
			}
			probs, err := s.Verify(ctx, true, nil)
			if err != nil || len(probs) != 1 || !probs[0].Repaired {
				t.Fatalf("verify --repair: %+v, %v", probs, err)
			}
			m, err := s.Manifest(id)
			if err != nil || m.App == nil || m.App.Exec[0] != "/good" {
				t.Errorf("after repair: %+v, %v", m, err)
			}
		})
	}
}

func TestMigrate(t *testing.T) {
	s := newStore(t)
	id := importTar(t, s, acitest.Image(t, "example.com/app", map[string]string{"f": "x"}))
	dir, err := s.Render(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	// Lay out what the first release left: 0755 directories, 0644 files,
	// no tree hash, no format file.
	os.Remove(filepath.Join(dir, treeHashFile))
	os.Remove(filepath.Join(s.dir, formatFile))
	for _, p := range []string{s.dir, s.cas, filepath.Join(s.cas, "tree"), dir, filepath.Join(s.cas, "blobs")} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(s.blobPath(id), 0o644)
	if v, err := ReadFormat(s.dir); v != 0 || err != nil {
		t.Fatalf("old store format = %d, %v", v, err)
	}
	if err := s.migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := ReadFormat(s.dir); v != Format || err != nil {
		t.Errorf("format after migration = %d, %v", v, err)
	}
	if probs, err := s.Verify(ctx, false, nil); err != nil || len(probs) != 0 {
		t.Errorf("verify after migration: %+v, %v", probs, err)
	}
	for p, want := range map[string]os.FileMode{s.dir: 0o750, s.cas: 0o750, filepath.Join(s.cas, "tree"): 0o700, dir: 0o700, s.blobPath(id): 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v, want %04o", p, fi, err, want)
		}
	}
	// A newer format is refused.
	newer := strconv.Itoa(Format + 1)
	os.WriteFile(filepath.Join(s.dir, formatFile), []byte(newer+"\n"), 0o640)
	if _, err := Open(s.dir, nil); !errors.Is(err, ErrFormat) {
		t.Errorf("open of format %s: %v, want ErrFormat", newer, err)
	}
}

// An administrator may keep the data dir elsewhere behind a symlink.
func TestOpenThroughSymlink(t *testing.T) {
	base := t.TempDir()
	real, link := filepath.Join(base, "real"), filepath.Join(base, "link")
	// An unprivileged Open does not migrate: give the dir its mode itself.
	if err := os.Mkdir(real, 0o755); err != nil || os.Chmod(real, 0o750) != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := Open(link, nil)
	if err != nil {
		t.Fatal(err)
	}
	importTar(t, s, acitest.Image(t, "example.com/app", nil))
	if probs, err := s.Verify(ctx, false, nil); err != nil || len(probs) != 0 {
		t.Errorf("verify: %+v, %v", probs, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v, %v", fi, err)
	}
}

func TestVerifyStaleTemp(t *testing.T) {
	s := newStore(t)
	old, fresh := filepath.Join(s.TmpDir(), "download-old"), filepath.Join(s.TmpDir(), "download-new")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	long := time.Now().Add(-2 * tmpMaxAge)
	if err := os.Chtimes(old, long, long); err != nil {
		t.Fatal(err)
	}
	probs, err := s.Verify(ctx, true, nil)
	if err != nil || len(probs) != 1 || probs[0].Path != old || !probs[0].Repaired {
		t.Fatalf("verify: %+v, %v", probs, err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a download in progress was removed: %v", err)
	}
}
