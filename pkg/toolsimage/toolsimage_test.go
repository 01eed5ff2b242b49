package toolsimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/store"
)

// writeACI writes a tiny gzipped ACI named name, with rootfs/bin/tool, to a
// file and returns its path; deps are names it depends on.
func writeACI(t *testing.T, name string, deps ...string) string {
	t.Helper()
	man := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	var ds []map[string]string
	for _, d := range deps {
		ds = append(ds, map[string]string{"imageName": d})
	}
	if ds != nil {
		man["dependencies"] = ds
	}
	mb, err := json.Marshal(man)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, f := range []struct {
		name string
		body string
		dir  bool
	}{{"manifest", string(mb), false}, {"rootfs/", "", true}, {"rootfs/bin/", "", true}, {"rootfs/bin/tool", "#!/bin/true\n", false}} {
		h := &tar.Header{Name: f.name, Mode: 0o755, Size: int64(len(f.body)), Typeflag: tar.TypeReg}
		if f.dir {
			h.Typeflag = tar.TypeDir
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, f.body)
	}
	if err := errors.Join(tw.Close(), zw.Close()); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "tools.aci")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRootfs(t *testing.T) {
	junk := filepath.Join(t.TempDir(), "junk.aci")
	if err := os.WriteFile(junk, []byte("not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		err  error
	}{
		{"an ACI", writeACI(t, "example.com/tools"), nil},
		{"not an image", junk, ErrNotTools},
		{"a directory", t.TempDir(), ErrNotTools},
		{"missing", "/nonexistent/tools.aci", os.ErrNotExist},
		{"with dependencies", writeACI(t, "example.com/layered", "example.com/base"), ErrNotTools},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			rootfs, err := Rootfs(context.Background(), s, tt.path)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				// A refused file leaves nothing in the store.
				if imgs, err := s.List(); err != nil || len(imgs) != 0 {
					t.Errorf("store holds %d images after the refusal (%v)", len(imgs), err)
				}
				return
			}
			if _, err := os.Stat(filepath.Join(rootfs, "bin/tool")); err != nil {
				t.Errorf("rendered rootfs lacks bin/tool: %v", err)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	empty, full := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(full, DefaultFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := Default([]string{empty, full}); err != nil || p != filepath.Join(full, DefaultFile) {
		t.Errorf("Default = %q, %v; want the file in %s", p, err, full)
	}
	if _, err := Default([]string{empty}); err == nil {
		t.Errorf("Default found a file in an empty directory")
	}
}

// TestTree: an image already in the store serves by ID when it stands
// alone; one with dependencies, or an ID the store lacks, is refused.
func TestTree(t *testing.T) {
	s, err := store.Open(t.TempDir(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	imp := func(path string) string {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		id, err := s.Import(context.Background(), f, store.ImportOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	alone, layered := imp(writeACI(t, "example.com/tools")), imp(writeACI(t, "example.com/layered", "example.com/tools"))
	for _, tt := range []struct {
		name, id string
		err      error
	}{
		{"stands alone", alone, nil},
		{"with dependencies", layered, ErrNotTools},
		{"not in the store", "sha512-" + strings.Repeat("0", 128), store.ErrNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := Tree(context.Background(), s, tt.id)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err == nil {
				if _, err := os.Stat(filepath.Join(dir, "bin/tool")); err != nil {
					t.Errorf("tree %s lacks bin/tool: %v", dir, err)
				}
			}
		})
	}
}
