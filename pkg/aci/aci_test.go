package aci

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/ulikunitz/xz"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case "tar":
		return data
	case "gzip":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "xz":
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case "bzip2": // Go has no bzip2 writer; the bzip2 tool is in every base image
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Skipf("bzip2 tool unavailable: %v", err)
		}
		return out
	}
	return buf.Bytes()
}

func TestDecompress(t *testing.T) {
	img := acitest.Image(t, "example.com/app", map[string]string{"hello": "world"})
	for _, kind := range []string{"tar", "gzip", "bzip2", "xz"} {
		t.Run(kind, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(compress(t, kind, img)))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, img) {
				t.Errorf("round trip changed the tar (%d bytes, want %d)", len(got), len(img))
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		_, err := Decompress(strings.NewReader("PK\x03\x04 this is a zip"))
		if !errors.Is(err, ErrUnknownFormat) {
			t.Errorf("got %v, want ErrUnknownFormat", err)
		}
	})
}

func TestReadManifest(t *testing.T) {
	m, err := ReadManifest(bytes.NewReader(acitest.Image(t, "example.com/app", nil, `"labels":[{"name":"version","value":"1.0"}]`)))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := m.GetLabel("version"); m.Name != "example.com/app" || v != "1.0" {
		t.Errorf("got name %q version %q", m.Name, v)
	}
}

// sandbox returns a root to extract into and a sentinel directory beside it
// that must stay empty.
func sandbox(t *testing.T) (*os.Root, string, string) {
	t.Helper()
	base := t.TempDir()
	dir, sentinel := filepath.Join(base, "root"), filepath.Join(base, "sentinel")
	for _, d := range []string{dir, sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return root, dir, sentinel
}

func TestExtractHostile(t *testing.T) {
	const man = "manifest"
	good := acitest.Entry{Name: man, Body: acitest.Manifest("example.com/evil")}
	type E = acitest.Entry
	tests := []struct {
		name    string
		entries []E
		opts    ExtractOptions
		want    error
		naming  string // the message must name this entry
	}{
		{"absolute", []E{good, {Name: "/etc/evil"}}, ExtractOptions{}, ErrUnsafeEntry, "/etc/evil"},
		{"dotdot", []E{good, {Name: "../sentinel/x"}}, ExtractOptions{}, ErrUnsafeEntry, "../sentinel/x"},
		{"rootfs dotdot", []E{good, {Name: "rootfs/../../sentinel/x"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/../../sentinel/x"},
		{"through absolute symlink", []E{good, {Name: "rootfs/l", Type: '2', Link: "/"}, {Name: "rootfs/l/etc/passwd"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/l/etc/passwd"},
		{"through relative symlink", []E{good, {Name: "rootfs/l", Type: '2', Link: "../../sentinel"}, {Name: "rootfs/l/x"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/l/x"},
		{"dir through symlink", []E{good, {Name: "rootfs/l", Type: '2', Link: "../../sentinel"}, {Name: "rootfs/l/d/"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/l/d/"},
		{"hardlink absolute", []E{good, {Name: "rootfs/pw", Type: '1', Link: "/etc/passwd"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/pw"},
		{"hardlink outside", []E{good, {Name: "rootfs/pw", Type: '1', Link: "../outside"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/pw"},
		{"hardlink not yet extracted", []E{good, {Name: "rootfs/a", Type: '1', Link: "rootfs/b"}, {Name: "rootfs/b"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/a"},
		{"hardlink to manifest", []E{good, {Name: "rootfs/m", Type: '1', Link: "manifest"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/m"},
		{"char device", []E{good, {Name: "rootfs/dev/null", Type: '3'}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/dev/null"},
		{"block device", []E{good, {Name: "rootfs/dev/sda", Type: '4'}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/dev/sda"},
		{"extra top level", []E{good, {Name: "evil"}}, ExtractOptions{}, ErrUnsafeEntry, "evil"},
		{"file replaces dir", []E{good, {Name: "rootfs/d/"}, {Name: "rootfs/d"}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/d"},
		{"missing manifest", []E{{Name: "rootfs/x"}}, ExtractOptions{}, ErrNoManifest, ""},
		{"bad manifest json", []E{{Name: man, Body: "{not json"}}, ExtractOptions{}, ErrBadManifest, ""},
		{"wrong acKind", []E{{Name: man, Body: `{"acKind":"PodManifest","acVersion":"0.8.11","name":"x"}`}}, ExtractOptions{}, ErrBadManifest, ""},
		{"bad name", []E{{Name: man, Body: acitest.Manifest("Not A Name!")}}, ExtractOptions{}, ErrBadManifest, ""},
		{"bomb", []E{good, {Name: "rootfs/a", Body: strings.Repeat("x", 600)}, {Name: "rootfs/b", Body: strings.Repeat("x", 600)}}, ExtractOptions{MaxBytes: 1000}, ErrTooLarge, "rootfs/b"},
		{"too many entries", []E{good, {Name: "rootfs/a"}, {Name: "rootfs/b"}}, ExtractOptions{MaxEntries: 2}, ErrTooLarge, ""},
		{"too deep", []E{good, {Name: "rootfs/" + strings.Repeat("d/", MaxDepth) + "f"}}, ExtractOptions{}, ErrUnsafeEntry, "deeper than 1024"},
		{"too deep dir", []E{good, {Name: "rootfs/" + strings.Repeat("d/", MaxDepth+1)}}, ExtractOptions{}, ErrUnsafeEntry, "deeper than 1024"},
		{"longer than PATH_MAX", []E{good, {Name: "rootfs/" + strings.Repeat("abcdefgh/", 455) + "f"}}, ExtractOptions{}, ErrUnsafeEntry, "longer than 4096"},
		{"link target longer than PATH_MAX", []E{good, {Name: "rootfs/l", Type: '2', Link: strings.Repeat("a/", 2049)}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/l"},
		{"uid 2^31", []E{good, {Name: "rootfs/f", Uid: 1 << 31}}, ExtractOptions{}, ErrUnsafeEntry, "uid 2147483648"},
		{"uid 2^32-1", []E{good, {Name: "rootfs/d/", Uid: 1<<32 - 1}}, ExtractOptions{}, ErrUnsafeEntry, "rootfs/d/"},
		{"pax sparse", []E{good, {Name: "rootfs/sparse", Body: "hello", PAX: map[string]string{
			"GNU.sparse.size": "1073741824", "GNU.sparse.numblocks": "1", "GNU.sparse.map": "0,5"}}}, ExtractOptions{}, ErrUnsafeEntry, "sparse"},
		{"no rootfs", []E{good}, ExtractOptions{}, ErrNoRootfs, ""},
		{"duplicate manifest key", []E{{Name: man, Body: `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/a","name":"example.com/b"}`}, {Name: "rootfs/"}}, ExtractOptions{}, ErrBadManifest, `duplicate key "name"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, _, sentinel := sandbox(t)
			tt.opts.NoChown = os.Geteuid() != 0
			_, err := Extract(bytes.NewReader(acitest.Tar(t, tt.entries...)), root, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			t.Log(err)
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, tt.naming) {
				t.Errorf("error %q should be one line naming %q", msg, tt.naming)
			}
			if ents, _ := os.ReadDir(sentinel); len(ents) != 0 {
				t.Errorf("sentinel dir got %d entries", len(ents))
			}
			if _, err := Validate(bytes.NewReader(acitest.Tar(t, tt.entries...)), tt.opts); !errors.Is(err, tt.want) {
				t.Errorf("Validate: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestExtractAllowed(t *testing.T) {
	type E = acitest.Entry
	root, dir, _ := sandbox(t)
	img := acitest.Tar(t,
		E{Name: "./rootfs/etc/", Mode: 0o750},
		E{Name: "rootfs/etc/localtime", Type: '2', Link: "/usr/share/zoneinfo/UTC"},
		E{Name: "rootfs/up", Type: '2', Link: "../../../.."},
		E{Name: "rootfs/f", Body: "one"},
		E{Name: "rootfs/f", Body: "two"}, // later entries win
		E{Name: "rootfs/x", Type: '2', Link: "/etc/passwd"},
		E{Name: "rootfs/x", Body: "replaced"}, // replaces the symlink, never writes through it
		E{Name: "rootfs/fifo", Type: '6', Mode: 0o600},
		E{Name: "manifest", Body: acitest.Manifest("example.com/ok")},
	)
	if _, err := Extract(bytes.NewReader(img), root, ExtractOptions{NoChown: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"rootfs/f": "two", "rootfs/x": "replaced"} {
		if got, _ := os.ReadFile(filepath.Join(dir, name)); string(got) != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if fi, err := os.Lstat(filepath.Join(dir, "rootfs/fifo")); err != nil || fi.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("fifo: %v %v", fi, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "rootfs/etc")); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("etc mode: %v %v", fi, err)
	}
}

func TestWriteExtractRoundTrip(t *testing.T) {
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(src, "usr/bin/tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/tool"), 0o755|os.ModeSetuid))
	must(os.Link(filepath.Join(src, "usr/bin/tool"), filepath.Join(src, "usr/bin/alias")))
	must(os.Symlink("usr/bin", filepath.Join(src, "bin")))
	must(os.Mkdir(filepath.Join(src, "ro"), 0o555))

	m := &schema.ImageManifest{Name: types.ACIdentifier("example.com/round")}
	var a, b bytes.Buffer
	must(Write(&a, m, src))
	must(Write(&b, m, src))
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("Write is not deterministic")
	}

	root, dir, _ := sandbox(t)
	noChown := os.Geteuid() != 0
	got, err := Extract(bytes.NewReader(a.Bytes()), root, ExtractOptions{NoChown: noChown})
	must(err)
	if got.Name != m.Name {
		t.Errorf("manifest name %q", got.Name)
	}
	wantTool := os.FileMode(0o755) | os.ModeSetuid
	if noChown {
		wantTool = 0o755
	}
	tool, err := os.Lstat(filepath.Join(dir, "rootfs/usr/bin/tool"))
	must(err)
	if tool.Mode() != wantTool {
		t.Errorf("tool mode %v, want %v", tool.Mode(), wantTool)
	}
	alias, err := os.Lstat(filepath.Join(dir, "rootfs/usr/bin/alias"))
	must(err)
	if !os.SameFile(tool, alias) {
		t.Error("hardlink not kept")
	}
	if l, err := os.Readlink(filepath.Join(dir, "rootfs/bin")); err != nil || l != "usr/bin" {
		t.Errorf("symlink = %q, %v", l, err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "rootfs/ro")); err != nil || fi.Mode().Perm() != 0o555 {
		t.Errorf("ro dir: %v %v", fi, err)
	}
	srcTool, _ := os.Lstat(filepath.Join(src, "usr/bin/tool"))
	if !tool.ModTime().Equal(srcTool.ModTime()) {
		t.Errorf("mtime %v, want %v", tool.ModTime(), srcTool.ModTime())
	}
}
