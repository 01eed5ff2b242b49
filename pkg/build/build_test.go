package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/oci"
)

// hostTree is a tree of the host's /usr/bin/ls, its loader and the
// multiarch library directory, with /lib as a symlink the way a
// merged-/usr system has it, so the closure is resolved through
// symlinks inside the tree.
func hostTree(t *testing.T) tree {
	t.Helper()
	for _, p := range []string{"/usr/bin/ls", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s: %v (the test needs an x86_64 Debian host)", p, err)
		}
	}
	tr := tree{
		"lib":                        &node{typ: tar.TypeSymlink, link: "usr/lib"},
		"lib64":                      &node{typ: tar.TypeDir, mode: 0o755},
		"lib64/ld-linux-x86-64.so.2": &node{typ: tar.TypeSymlink, link: "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
	}
	if err := tr.addHost("/usr/bin/ls", "/bin/ls", "host"); err != nil {
		t.Fatal(err)
	}
	if err := tr.addHost("/usr/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "host"); err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestClosure(t *testing.T) {
	tr := hostTree(t)
	files, extra, err := tr.closure([]string{"/bin/ls"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bin/ls", "lib64/ld-linux-x86-64.so.2", "lib", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
		"usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libselinux.so.1"} {
		if !files[want] {
			t.Errorf("closure of /bin/ls lacks %s", want)
		}
	}
	if len(files) > 20 {
		t.Errorf("closure of /bin/ls has %d files, more than it needs", len(files))
	}
	if len(extra) != 0 {
		t.Errorf("extra library dirs %v, want none (all in the loader's default path)", extra)
	}

	for _, tt := range []struct {
		name, remove, want string
	}{
		{"library", "usr/lib/x86_64-linux-gnu/libselinux.so.1", "/bin/ls needs libselinux.so.1"},
		{"library of a library", "usr/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/bin/ls needs libpcre2-8.so.0 (wanted by /usr/lib/x86_64-linux-gnu/libselinux.so.1)"},
		{"interpreter", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/bin/ls needs its interpreter /lib64/ld-linux-x86-64.so.2"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := hostTree(t)
			delete(tr, tt.remove)
			_, _, err := tr.closure([]string{"/bin/ls"})
			if !errors.Is(err, ErrMissingLibrary) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want ErrMissingLibrary with %q", err, tt.want)
			}
		})
	}

	// A library found only through the image's ld.so.conf (not the
	// loader's defaults) is found, and its directory reported.
	t.Run("ld.so.conf", func(t *testing.T) {
		tr := hostTree(t)
		tr["opt"] = &node{typ: tar.TypeDir, mode: 0o755}
		tr["opt/lib"] = &node{typ: tar.TypeDir, mode: 0o755}
		tr["opt/lib/libselinux.so.1"] = tr["usr/lib/x86_64-linux-gnu/libselinux.so.1"]
		delete(tr, "usr/lib/x86_64-linux-gnu/libselinux.so.1")
		tr["etc"] = &node{typ: tar.TypeDir, mode: 0o755}
		tr["etc/ld.so.conf"] = &node{typ: tar.TypeReg, mode: 0o644, data: []byte("include /etc/ld.so.conf.d/*.conf\n")}
		tr["etc/ld.so.conf.d"] = &node{typ: tar.TypeDir, mode: 0o755}
		tr["etc/ld.so.conf.d/opt.conf"] = &node{typ: tar.TypeReg, mode: 0o644, data: []byte("# comment\n/opt/lib\n")}
		files, extra, err := tr.closure([]string{"/bin/ls"})
		if err != nil {
			t.Fatal(err)
		}
		if !files["opt/lib/libselinux.so.1"] || len(extra) != 1 || extra[0] != "/opt/lib" {
			t.Errorf("files %v, extra %v", files, extra)
		}
	})
}

func TestResolve(t *testing.T) {
	tr := tree{
		"a":       &node{typ: tar.TypeDir},
		"a/b":     &node{typ: tar.TypeSymlink, link: "../c"},
		"c":       &node{typ: tar.TypeDir},
		"c/f":     &node{typ: tar.TypeReg},
		"abs":     &node{typ: tar.TypeSymlink, link: "/c/f"},
		"up":      &node{typ: tar.TypeSymlink, link: "../../../../c/f"}, // .. stops at the image root
		"loop":    &node{typ: tar.TypeSymlink, link: "loop"},
		"file":    &node{typ: tar.TypeReg},
		"through": &node{typ: tar.TypeSymlink, link: "file/x"},
	}
	for _, tt := range []struct {
		in, want string
		links    int
		err      bool
	}{
		{"/a/b/f", "c/f", 1, false},
		{"abs", "c/f", 1, false},
		{"up", "c/f", 1, false},
		{"/c/../c/f", "c/f", 0, false},
		{"loop", "", 0, true},
		{"missing", "", 0, true},
		{"through", "", 0, true},
	} {
		got, links, err := tr.resolve(tt.in)
		if (err != nil) != tt.err || got != tt.want || (!tt.err && len(links) != tt.links) {
			t.Errorf("resolve(%q) = %q, %v, %v; want %q, %d links, error %t", tt.in, got, links, err, tt.want, tt.links, tt.err)
		}
	}
}

// TestWriteTarDeterministic: the same content from two host trees with
// other mtimes and creation order gives the same bytes,
// sorted, 0:0, mtime epoch, no names.
func TestWriteTarDeterministic(t *testing.T) {
	mk := func(when time.Time, order []string) []byte {
		dir := t.TempDir()
		for _, n := range order {
			p := filepath.Join(dir, n)
			os.MkdirAll(filepath.Dir(p), 0o755)
			os.WriteFile(p, []byte("content of "+n), 0o644)
			os.Chmod(p, 0o644)
			os.Chtimes(p, when, when)
		}
		os.Symlink("b", filepath.Join(dir, "z-link"))
		tr := tree{}
		if err := tr.addHost(dir, "/", "test"); err != nil {
			t.Fatal(err)
		}
		for _, n := range tr {
			if n.typ == tar.TypeDir {
				n.mode = 0o755
			}
		}
		var b bytes.Buffer
		if err := writeTar(&b, tr, "", 1700000000, []Owner{{Path: "/d", UID: 7, GID: 8}}); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	a := mk(time.Unix(1, 0), []string{"b", "a", "d/x"})
	b := mk(time.Now(), []string{"d/x", "a", "b"})
	if !bytes.Equal(a, b) {
		t.Fatal("equal trees gave different tars")
	}
	tr := tar.NewReader(bytes.NewReader(a))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		wantUID := 0
		if strings.HasPrefix(h.Name, "d/") {
			wantUID = 7
		}
		if h.Uid != wantUID || h.Uname != "" || h.Gname != "" || h.ModTime.Unix() != 1700000000 || !h.AccessTime.IsZero() {
			t.Errorf("%s: uid %d %q %q mtime %v atime %v", h.Name, h.Uid, h.Uname, h.Gname, h.ModTime, h.AccessTime)
		}
	}
	if got := strings.Join(names, " "); got != "a b d/ d/x z-link" {
		t.Errorf("entries %q, want sorted", got)
	}
	ga, _ := gzipBytes(a)
	gb, _ := gzipBytes(b)
	if !bytes.Equal(ga, gb) || ga[4] != 0 || ga[9] != 255 {
		t.Errorf("gzip header not fixed: % x", ga[:10])
	}
}

func TestParseSpec(t *testing.T) {
	for _, tt := range []struct {
		in, err string
	}{
		{"debs: [redis-server]\nexec: [/usr/bin/redis-server]\n", ""},
		{"debs: [redis-server]\ncolour: red\n", `line 2: unknown key "colour"`},
		{"users:\n  - name: app\n    shell: /bin/sh\n", `line 3: unknown key "shell"`},
		{"debs: redis\n", "cannot unmarshal"},
		{"name: a\n---\nname: b\n", "more than one YAML document"},
	} {
		_, err := ParseSpec([]byte(tt.in))
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseSpec(%q) = %v, want %q", tt.in, err, tt.err)
		}
	}
	for _, tt := range []struct {
		s   Spec
		err string
	}{
		{Spec{Exec: []string{"/x"}}, ""},
		{Spec{}, "no exec"},
		{Spec{Exec: []string{"x"}}, "not an absolute path"},
		{Spec{Exec: []string{"/x"}, Debs: []string{"-o=evil"}}, "not a Debian package name"},
		{Spec{Exec: []string{"/x"}, User: "Bad User"}, "neither a name nor a number"},
		{Spec{Exec: []string{"/x"}, Env: []string{"NOVALUE"}}, "not NAME=VALUE"},
		{Spec{Exec: []string{"/x"}, Ports: []string{"http"}}, "not PORT"},
		{Spec{Exec: []string{"/x"}, Paths: []string{"rel:/x"}}, "HOSTPATH"},
	} {
		err := tt.s.Validate()
		if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Validate(%+v) = %v, want %q", tt.s, err, tt.err)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []string
	}{
		{"/bin/x a  b", []string{"/bin/x", "a", "b"}},
		{`/bin/x --save "" 'a b'`, []string{"/bin/x", "--save", "", "a b"}},
		{`/bin/x "it's"`, []string{"/bin/x", "it's"}},
	} {
		got, err := SplitCommand(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("SplitCommand(%q) = %q, %v", tt.in, got, err)
		}
	}
	if _, err := SplitCommand(`/bin/x "open`); err == nil {
		t.Error("an unterminated quote passed")
	}
}

func TestLock(t *testing.T) {
	l := Lock{{"libc6", "2.36-9+deb12u14"}, {"redis-server", "5:7.0.15-1~deb12u10"}}
	got, err := ParseLock(l.Bytes())
	if err != nil || len(got) != 2 || got[1] != l[1] {
		t.Errorf("round trip: %v %v", got, err)
	}
	for _, bad := range []string{"libc6\n", "libc6 1 2\n", "-x 1\n", "libc6 $(id)\n"} {
		if _, err := ParseLock([]byte(bad)); err == nil {
			t.Errorf("ParseLock(%q) passed", bad)
		}
	}
}

// TestSwappedSource: a host file swapped for a symlink (or its directory
// for a symlinked one) between the walk and the write is refused, never
// followed: a user who can write a --path directory cannot make the build
// copy a file only root can read into the image.
func TestSwappedSource(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(secret, []byte("root's secret"), 0o600)
	for _, tt := range []struct {
		name string
		swap func(dir string)
	}{
		{"file", func(dir string) {
			os.Remove(filepath.Join(dir, "sub", "f"))
			os.Symlink(secret, filepath.Join(dir, "sub", "f"))
		}},
		{"directory", func(dir string) {
			os.RemoveAll(filepath.Join(dir, "sub"))
			os.Mkdir(filepath.Join(dir, "other"), 0o755)
			os.Symlink(secret, filepath.Join(dir, "other", "f"))
			os.Symlink("other", filepath.Join(dir, "sub"))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.Mkdir(filepath.Join(dir, "sub"), 0o755)
			os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("public"), 0o644)
			tr := tree{}
			if err := tr.addHost(dir, "/data", "test"); err != nil {
				t.Fatal(err)
			}
			tt.swap(dir)
			var b bytes.Buffer
			err := writeTar(&b, tr, "", 0, nil)
			if err == nil || bytes.Contains(b.Bytes(), []byte("root's secret")) {
				t.Errorf("writeTar after the swap: %v; secret in the tar: %t", err, bytes.Contains(b.Bytes(), []byte("root's secret")))
			}
		})
	}
}

// TestClosureOrigin: DT_RUNPATH and DT_RPATH with $ORIGIN and ${ORIGIN}
// (fixtures from testdata/origin/gen.sh) are expanded to the directory of
// the object in the image, wherever the image puts it.
func TestClosureOrigin(t *testing.T) {
	for _, tt := range []struct {
		name, prog, libsAt, want string
	}{
		{"runpath", "bin/app", "opt/a", ""},
		{"rpath", "bin/app-rpath", "opt/a", ""},
		{"moved away from its libraries", "bin/app", "opt/elsewhere", "/opt/a/bin/app needs libone.so"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := hostTree(t)
			if err := tr.addHost(filepath.Join("testdata", "origin", tt.prog), "/opt/a/"+tt.prog, "test"); err != nil {
				t.Fatal(err)
			}
			for _, l := range []string{"lib1/libone.so", "lib2/libtwo.so"} {
				if err := tr.addHost(filepath.Join("testdata", "origin", l), tt.libsAt+"/"+l, "test"); err != nil {
					t.Fatal(err)
				}
			}
			files, _, err := tr.closure([]string{"/opt/a/" + tt.prog})
			if tt.want != "" {
				if !errors.Is(err, ErrMissingLibrary) || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("got %v, want %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"opt/a/lib1/libone.so", "opt/a/lib2/libtwo.so", "usr/lib/x86_64-linux-gnu/libc.so.6"} {
				if !files[want] {
					t.Errorf("closure lacks %s", want)
				}
			}
		})
	}
}

// TestACIFromBuiltLayer: the ACI output is written from the layer Build
// made, not from the inputs again: a build's unpacked packages are gone
// once Build returns (writing them again failed with "open
// .../skiff-build-N/root: no such file or directory"), and a host path
// changed since must not reach the image.
func TestACIFromBuiltLayer(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\necho built\n"), 0o755)
	s := &Spec{Name: "example.com/aci", Exec: []string{"/app/run"}, Paths: []string{dir + ":/app"}}
	r, err := Build(context.Background(), s, Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "run"), []byte("#!/bin/sh\necho changed\n"), 0o755)
	os.Remove(filepath.Join(dir, "run"))
	out := filepath.Join(t.TempDir(), "img.aci")
	if _, err := r.Image.Write(context.Background(), Output{ACI: out}, oci.Options{}, io.Discard); err != nil {
		t.Fatalf("write ACI: %v", err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		body, _ := io.ReadAll(tr)
		got[h.Name] = string(body)
	}
	if got["rootfs/app/run"] != "#!/bin/sh\necho built\n" {
		t.Errorf("rootfs/app/run = %q; entries %d", got["rootfs/app/run"], len(got))
	}
	if _, ok := got["manifest"]; !ok {
		t.Errorf("no manifest")
	}
}
