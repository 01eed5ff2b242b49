package layer

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// row is one tar entry of a test layer.
type row struct {
	name, link, body string
	typ              byte
	mode             int64
	xattrs           map[string]string
}

func file(name, body string) row { return row{name: name, body: body, typ: tar.TypeReg, mode: 0o644} }
func dir(name string) row        { return row{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, to string) row {
	return row{name: name, link: to, typ: tar.TypeSymlink, mode: 0o777}
}
func hardlink(name, to string) row { return row{name: name, link: to, typ: tar.TypeLink, mode: 0o644} }

func layerTar(t *testing.T, rows []row) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, r := range rows {
		h := &tar.Header{Name: r.name, Linkname: r.link, Typeflag: r.typ, Mode: r.mode, Size: int64(len(r.body)), Format: tar.FormatPAX}
		for k, v := range r.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+k] = v
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("write header %q: %v", r.name, err)
		}
		if _, err := tw.Write([]byte(r.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

// unpack unpacks rows into a fresh directory below a sentinel parent, so a
// test can see whether anything landed outside.
func unpack(t *testing.T, rows []row, opts Options) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("layer: needs root (chown, mknod, trusted.* xattrs); run as root, as `make test` does")
	}
	top := t.TempDir()
	dst := filepath.Join(top, "layer")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	err = Unpack(layerTar(t, rows), root, opts)
	ents, _ := os.ReadDir(top)
	if len(ents) != 1 {
		t.Errorf("unpack wrote beside the layer dir: %v", ents)
	}
	return dst, err
}

func isWhiteout(t *testing.T, p string) bool {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, OpaqueXattr, buf)
	return err == nil && string(buf[:n]) == "y"
}

func TestUnpack(t *testing.T) {
	tests := []struct {
		name  string
		rows  []row
		check func(t *testing.T, d string)
	}{
		{"files dirs links", []row{dir("etc/"), file("etc/a", "A"), hardlink("etc/b", "etc/a"), symlink("etc/s", "/etc/a"), symlink("up", "../../../")}, func(t *testing.T, d string) {
			if b, _ := os.ReadFile(filepath.Join(d, "etc/b")); string(b) != "A" {
				t.Errorf("hard link reads %q", b)
			}
			var a, b unix.Stat_t
			unix.Lstat(filepath.Join(d, "etc/a"), &a)
			unix.Lstat(filepath.Join(d, "etc/b"), &b)
			if a.Ino != b.Ino {
				t.Errorf("etc/b is not a hard link of etc/a")
			}
			if l, _ := os.Readlink(filepath.Join(d, "etc/s")); l != "/etc/a" {
				t.Errorf("symlink = %q, want it kept as /etc/a", l)
			}
		}},
		{"whiteout", []row{dir("etc/"), file("etc/.wh.passwd", ""), file(".wh.gone", "")}, func(t *testing.T, d string) {
			for _, p := range []string{"etc/passwd", "gone"} {
				if !isWhiteout(t, filepath.Join(d, p)) {
					t.Errorf("%s is not a 0:0 char device", p)
				}
			}
			if _, err := os.Lstat(filepath.Join(d, "etc/.wh.passwd")); !os.IsNotExist(err) {
				t.Errorf(".wh. file itself was written: %v", err)
			}
		}},
		{"opaque dir", []row{dir("var/"), dir("var/lib/"), file("var/lib/.wh..wh..opq", ""), file("var/lib/new", "n")}, func(t *testing.T, d string) {
			if !isOpaque(filepath.Join(d, "var/lib")) {
				t.Errorf("var/lib not opaque")
			}
			if isOpaque(filepath.Join(d, "var")) {
				t.Errorf("var opaque")
			}
		}},
		{"opaque marker before its dir", []row{file("x/.wh..wh..opq", ""), dir("x/")}, func(t *testing.T, d string) {
			if !isOpaque(filepath.Join(d, "x")) {
				t.Errorf("x not opaque")
			}
		}},
		{"dir replacing a whiteout becomes opaque", []row{file(".wh.d", ""), dir("d/"), file("d/f", "")}, func(t *testing.T, d string) {
			if fi, err := os.Lstat(filepath.Join(d, "d")); err != nil || !fi.IsDir() || !isOpaque(filepath.Join(d, "d")) {
				t.Errorf("d is not an opaque directory: %v %v", fi, err)
			}
		}},
		{"implied dir replacing a whiteout becomes opaque", []row{file(".wh.d", ""), file("d/f", "x")}, func(t *testing.T, d string) {
			if b, err := os.ReadFile(filepath.Join(d, "d/f")); err != nil || string(b) != "x" || !isOpaque(filepath.Join(d, "d")) {
				t.Errorf("d/f = %q, %v; opaque %v", b, err, isOpaque(filepath.Join(d, "d")))
			}
		}},
		{"file replacing a whiteout", []row{file(".wh.f", ""), file("f", "new")}, func(t *testing.T, d string) {
			if b, err := os.ReadFile(filepath.Join(d, "f")); err != nil || string(b) != "new" {
				t.Errorf("f = %q, %v", b, err)
			}
		}},
		{"aufs bookkeeping skipped", []row{dir(".wh..wh.plnk/"), file(".wh..wh.aufs", "")}, func(t *testing.T, d string) {
			if ents, _ := os.ReadDir(d); len(ents) != 0 {
				t.Errorf("tree holds %v", ents)
			}
		}},
		{"image xattrs filtered", []row{{name: "f", typ: tar.TypeReg, mode: 0o644, xattrs: map[string]string{
			"trusted.overlay.opaque": "y", "trusted.overlay.redirect": "/etc", "security.selinux": "x", "user.k": "v",
		}}}, func(t *testing.T, d string) {
			buf := make([]byte, 1024)
			n, _ := unix.Llistxattr(filepath.Join(d, "f"), buf)
			got := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
			if len(got) != 1 || got[0] != "user.k" {
				t.Errorf("xattrs = %q, want only user.k", got)
			}
		}},
		{"later entry replaces symlink, never written through", []row{symlink("l", "/tmp"), file("l", "plain")}, func(t *testing.T, d string) {
			if fi, _ := os.Lstat(filepath.Join(d, "l")); !fi.Mode().IsRegular() {
				t.Errorf("l is %v", fi.Mode())
			}
		}},
		{"setuid kept", []row{{name: "su", typ: tar.TypeReg, mode: 0o4755}}, func(t *testing.T, d string) {
			if fi, _ := os.Lstat(filepath.Join(d, "su")); fi.Mode()&os.ModeSetuid == 0 {
				t.Errorf("setuid lost: %v", fi.Mode())
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := unpack(t, tt.rows, Options{})
			if err != nil {
				t.Fatalf("Unpack: %v", err)
			}
			tt.check(t, d)
		})
	}
}

func TestUnpackRefuses(t *testing.T) {
	deep := strings.Repeat("d/", 300) + "f"
	tests := []struct {
		name string
		rows []row
		opts Options
		want error
		says string
	}{
		{"absolute", []row{file("/etc/passwd", "x")}, Options{}, ErrUnsafeEntry, "absolute"},
		{"dotdot", []row{file("a/../../x", "x")}, Options{}, ErrUnsafeEntry, `".."`},
		{"dotdot symlink target is data, link name is not", []row{symlink("../x", "y")}, Options{}, ErrUnsafeEntry, `".."`},
		{"write through symlink", []row{symlink("etc", "/etc"), file("etc/passwd", "x")}, Options{}, ErrUnsafeEntry, "not a directory of this layer"},
		{"dir through symlink", []row{symlink("etc", "/etc"), dir("etc/cron.d/")}, Options{}, ErrUnsafeEntry, "not a directory of this layer"},
		{"whiteout through symlink", []row{symlink("etc", "/etc"), file("etc/.wh.passwd", "")}, Options{}, ErrUnsafeEntry, "not a directory of this layer"},
		{"opaque through symlink", []row{symlink("etc", "/etc"), file("etc/.wh..wh..opq", "")}, Options{}, ErrUnsafeEntry, "not a directory of this layer"},
		{"char device", []row{{name: "null", typ: tar.TypeChar}}, Options{}, ErrUnsafeEntry, "device node"},
		{"forged whiteout device", []row{{name: "x", typ: tar.TypeChar, mode: 0o600}}, Options{}, ErrUnsafeEntry, "device node"},
		{"block device", []row{{name: "sda", typ: tar.TypeBlock}}, Options{}, ErrUnsafeEntry, "device node"},
		{"hard link outside", []row{hardlink("p", "/etc/passwd")}, Options{}, ErrUnsafeEntry, "hard link target"},
		{"hard link up", []row{hardlink("p", "../etc/passwd")}, Options{}, ErrUnsafeEntry, "hard link target"},
		{"hard link to lower layer", []row{hardlink("p", "etc/passwd")}, Options{}, ErrUnsafeEntry, "hard link target"},
		{"hard link to a whiteout", []row{file(".wh.x", ""), hardlink("p", "x")}, Options{}, ErrUnsafeEntry, "hard link target"},
		{"whiteout dotdot", []row{file("a/.wh...", "")}, Options{}, ErrUnsafeEntry, `whiteout of ".."`},
		{"whiteout dot", []row{file(".wh..", "")}, Options{}, ErrUnsafeEntry, `whiteout of "."`},
		{"whiteout empty", []row{file(".wh.", "")}, Options{}, ErrUnsafeEntry, `whiteout of ""`},
		{"whiteout escaping", []row{file("../.wh.x", "")}, Options{}, ErrUnsafeEntry, `".."`},
		{"whiteout of same layer", []row{file("f", "x"), file(".wh.f", "")}, Options{}, ErrUnsafeEntry, "same layer"},
		{"opaque at layer root", []row{file(".wh..wh..opq", "")}, Options{}, ErrUnsafeEntry, "layer root"},
		{"file replaces dir", []row{dir("d/"), file("d", "x")}, Options{}, ErrUnsafeEntry, "replaces a directory"},
		{"too deep", []row{file(deep, "x")}, Options{}, ErrUnsafeEntry, "deeper than 256"},
		{"path too long", []row{file(strings.Repeat("n/", 2100)+"f", "x")}, Options{MaxDepth: 5000}, ErrUnsafeEntry, "longer than 4096"},
		{"component too long", []row{file(strings.Repeat("n", 256), "x")}, Options{}, ErrUnsafeEntry, "longer than 255"},
		{"too many bytes", []row{file("a", "12345"), file("b", "67890")}, Options{MaxBytes: 8}, ErrTooLarge, "past 8 bytes"},
		{"too many entries", []row{file("a", ""), file("b", ""), file("c", "")}, Options{MaxEntries: 2}, ErrTooLarge, "more than 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := unpack(t, tt.rows, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unpack = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line saying %q", err, tt.says)
			}
		})
	}
}

// TestOverlayStack mounts unpacked layers as overlayfs lowerdirs, as the
// store will: the kernel, not the test, decides whether the whiteouts and
// opaque directories mean what they should.
func TestOverlayStack(t *testing.T) {
	lower, err := unpack(t, []row{dir("a/"), file("a/x", "x"), file("a/y", "y"), dir("b/"), file("b/z", "z"), file("c", "c"), file("keep", "k")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	upper, err := unpack(t, []row{dir("a/"), file("a/.wh..wh..opq", ""), file("a/new", "n"), file(".wh.b", ""), file(".wh.c", "")}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+upper+":"+lower); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	var got []string
	filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if p != mnt {
			rel, _ := filepath.Rel(mnt, p)
			got = append(got, rel)
		}
		return nil
	})
	want := []string{"a", "a/new", "keep"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("overlay shows %q, want %q", got, want)
	}
}
