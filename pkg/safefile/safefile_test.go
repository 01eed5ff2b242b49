package safefile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hostile builds, in a fresh directory, the file kind named: each one a
// file a pod or an image could plant where skiff expects a small file.
func hostile(t *testing.T, dir, kind string) string {
	t.Helper()
	p := filepath.Join(dir, "f")
	var err error
	switch kind {
	case "ok":
		err = os.WriteFile(p, []byte("1234\n"), 0o644)
	case "empty":
		err = os.WriteFile(p, nil, 0o644)
	case "huge":
		if err = os.WriteFile(p, nil, 0o644); err == nil {
			err = os.Truncate(p, 10<<30) // sparse: 10 GiB declared, nothing written
		}
	case "fifo":
		err = unix.Mkfifo(p, 0o644)
	case "dir":
		err = os.Mkdir(p, 0o755)
	case "device":
		err = os.Symlink("/dev/null", p+".target")
		if err == nil {
			err = unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3)))
		}
	case "symlink":
		if err = os.WriteFile(filepath.Join(dir, "secret"), []byte("host secret"), 0o600); err == nil {
			err = os.Symlink(filepath.Join(dir, "secret"), p)
		}
	case "dangling":
		err = os.Symlink(filepath.Join(dir, "nowhere"), p)
	case "socket":
		var fd int
		if fd, err = unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0); err == nil {
			err = unix.Bind(fd, &unix.SockaddrUnix{Name: p})
			t.Cleanup(func() { unix.Close(fd) })
		}
	}
	if err != nil {
		t.Fatalf("make %s: %v", kind, err)
	}
	return p
}

func TestRead(t *testing.T) {
	tests := []struct {
		kind string
		want string // content, or the error text expected
		err  error
	}{
		{kind: "ok", want: "1234\n"},
		{kind: "empty", want: ""},
		{kind: "huge", err: ErrTooLarge},
		{kind: "fifo", err: ErrNotRegular},
		{kind: "dir", err: ErrNotRegular},
		{kind: "device", err: ErrNotRegular},
		{kind: "socket", err: unix.ENXIO},
		{kind: "symlink", err: ErrSymlink},
		{kind: "dangling", err: ErrSymlink},
	}
	readers := map[string]func(dir, p string) ([]byte, error){
		"ReadFile":   func(_, p string) ([]byte, error) { return ReadFile(p, 100) },
		"ReadFileAt": func(dir, p string) ([]byte, error) { return ReadFileAt(dir, filepath.Base(p), 100) },
	}
	for rname, read := range readers {
		for _, tt := range tests {
			t.Run(rname+"/"+tt.kind, func(t *testing.T) {
				dir := t.TempDir()
				p := hostile(t, dir, tt.kind)
				b, err := within(t, func() ([]byte, error) { return read(dir, p) })
				if tt.err != nil {
					if !errors.Is(err, tt.err) {
						t.Fatalf("got %q, %v; want error %v", b, err, tt.err)
					}
					if strings.Contains(err.Error(), "\n") {
						t.Errorf("error %q is more than one line", err)
					}
					return
				}
				if err != nil || string(b) != tt.want {
					t.Fatalf("got %q, %v; want %q", b, err, tt.want)
				}
			})
		}
	}
}

// within fails the test if fn blocks: a FIFO must never hang a reader.
func within(t *testing.T, fn func() ([]byte, error)) ([]byte, error) {
	t.Helper()
	type res struct {
		b   []byte
		err error
	}
	c := make(chan res, 1)
	go func() { b, err := fn(); c <- res{b, err} }()
	select {
	case r := <-c:
		return r.b, r.err
	case <-time.After(5 * time.Second):
		t.Fatal("blocked for 5 s")
		return nil, nil
	}
}

func TestReadFileAtNoSymlinkBelow(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Dir(secret), filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sub/secret", "../" + filepath.Base(dir) + "/sub/secret"} {
		if b, err := ReadFileAt(dir, name, 100); err == nil {
			t.Errorf("ReadFileAt(%q) = %q, want an error", name, b)
		}
	}
	// The trusted dir itself may be a symlink.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(secret), link); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFileAt(link, "secret", 100); err != nil || string(b) != "host" {
		t.Errorf("ReadFileAt through a symlinked dir = %q, %v", b, err)
	}
}

func TestReadFileIn(t *testing.T) {
	for _, tt := range []struct {
		kind string
		err  error
	}{
		{"ok", nil}, {"huge", ErrTooLarge}, {"fifo", ErrNotRegular}, {"dir", ErrNotRegular}, {"device", ErrNotRegular},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			dir := t.TempDir()
			hostile(t, dir, tt.kind)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			_, err = within(t, func() ([]byte, error) { return ReadFileIn(root, "f", 100) })
			if !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
		})
	}
}

func TestWrite(t *testing.T) {
	tests := []struct {
		kind      string
		overwrite bool
		err       error
	}{
		{kind: "none", overwrite: false},
		{kind: "none", overwrite: true},
		{kind: "ok", overwrite: true},
		{kind: "ok", overwrite: false, err: fs.ErrExist},
		{kind: "symlink", overwrite: true, err: ErrSymlink},
		{kind: "symlink", overwrite: false, err: ErrSymlink},
		{kind: "dangling", overwrite: true, err: ErrSymlink},
		{kind: "fifo", overwrite: true, err: ErrNotRegular},
		{kind: "device", overwrite: true, err: ErrNotRegular},
		{kind: "dir", overwrite: true, err: ErrNotRegular},
	}
	for _, tt := range tests {
		name := tt.kind
		if tt.overwrite {
			name += "/overwrite"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "f")
			if tt.kind != "none" {
				p = hostile(t, dir, tt.kind)
			}
			_, err := within(t, func() ([]byte, error) { return nil, WriteFile(p, []byte("out"), 0o640, tt.overwrite) })
			if tt.overwrite {
				// WriteUnsynced refuses and writes the same.
				if _, uerr := within(t, func() ([]byte, error) { return nil, WriteUnsynced(p, []byte("out"), 0o640) }); !errors.Is(uerr, tt.err) {
					t.Fatalf("unsynced: got %v, want %v", uerr, tt.err)
				}
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "secret")); err == nil && string(b) != "host secret" {
				t.Errorf("wrote through the symlink: secret is now %q", b)
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if strings.Contains(e.Name(), ".tmp-") {
					t.Errorf("temporary file %s left behind", e.Name())
				}
			}
			if tt.err != nil {
				return
			}
			fi, err := os.Lstat(p)
			if err != nil || fi.Mode() != 0o640 {
				t.Fatalf("after write: %v, %v; want a 0640 file", fi, err)
			}
			if b, _ := os.ReadFile(p); string(b) != "out" {
				t.Errorf("content %q, want %q", b, "out")
			}
		})
	}
}

func TestWriteFillFails(t *testing.T) {
	dir := t.TempDir()
	p := hostile(t, dir, "ok")
	boom := errors.New("boom")
	if err := Write(p, 0o644, true, func(io.Writer) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
}
