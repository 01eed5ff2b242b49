//go:build e2e

package netns

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// These tests create real network namespaces: they need root and run under
// `make test` (build tag e2e).
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces: run as root (make test)")
	}
}

// thisNetns is the inode of the calling thread's network namespace.
func thisNetns(t *testing.T) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func newNetns(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "netns", "pod")
	if err := Create(p); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { Remove(p) })
	return p
}

func TestCreateDoRemove(t *testing.T) {
	requireRoot(t)
	p := newNetns(t)
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	host := thisNetns(t)
	if err := Check(p); err != nil {
		t.Errorf("Check: %v", err)
	}
	if st.Ino == host {
		t.Fatalf("netns file has the host's namespace inode %d", host)
	}
	var inside uint64
	var ln net.Listener
	err := Do(p, func() error {
		inside = thisNetns(t)
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0") // lo is up
		return err
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer ln.Close()
	if inside != st.Ino {
		t.Errorf("inside Do: netns inode %d, want %d", inside, st.Ino)
	}
	// The listener lives in the pod's namespace: the host cannot reach it.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("host reached %s, which listens inside the pod netns", ln.Addr())
	}
	err = Do(p, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	})
	if err != nil {
		t.Errorf("dial inside the pod netns: %v", err)
	}
	want := errors.New("from fn")
	if err := Do(p, func() error { return want }); !errors.Is(err, want) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
	if got := thisNetns(t); got != host {
		t.Errorf("after Do: test thread in netns %d, want host %d", got, host)
	}
	for i := 0; i < 2; i++ {
		if err := Remove(p); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := os.Lstat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after Remove: %s still there (%v)", p, err)
	}
	if err := Do(p, func() error { return nil }); err == nil {
		t.Errorf("Do on a removed netns succeeded")
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling")
	if err := os.Symlink(filepath.Join(dir, "nothing"), dangling); err != nil {
		t.Fatal(err)
	}
	ns := newNetns(t)
	for _, p := range []string{target, link, dangling, dir, ns} {
		if err := Create(p); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Create(%s): %v, want ErrExist", p, err)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("target changed: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nothing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Create followed a dangling symlink")
	}
	if err := Do(ns, func() error { return nil }); err != nil {
		t.Errorf("the existing netns was damaged: %v", err)
	}
}

func TestNotNetns(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(newNetns(t), link); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		path string
	}{
		{"regular file", file},
		{"symlink to a netns", link},
		{"mount namespace", "/proc/self/ns/mnt"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Check(c.path); err == nil {
				t.Errorf("Check(%s) = nil, want an error", c.path)
			}
			ran := false
			if err := Do(c.path, func() error { ran = true; return nil }); err == nil || ran {
				t.Errorf("Do(%s): err %v, ran %v; want refused", c.path, err, ran)
			}
		})
	}
	for _, p := range []string{file, link, dir} {
		if err := Remove(p); !errors.Is(err, ErrNotNetns) {
			t.Errorf("Remove(%s): %v, want ErrNotNetns", p, err)
		}
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("Remove(%s) removed it: %v", p, err)
		}
	}
}

func TestNewDoFile(t *testing.T) {
	requireRoot(t)
	f, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	host := thisNetns(t)
	if st.Ino == host {
		t.Fatalf("New gave the host's namespace")
	}
	var inside uint64
	var ln net.Listener
	err = DoFile(f, func() error {
		inside = thisNetns(t)
		ln, err = net.Listen("tcp", "127.0.0.1:0") // lo is up
		return err
	})
	if err != nil {
		t.Fatalf("DoFile: %v", err)
	}
	defer ln.Close()
	if inside != st.Ino {
		t.Errorf("inside DoFile: netns inode %d, want %d", inside, st.Ino)
	}
	if got := thisNetns(t); got != host {
		t.Errorf("after DoFile: test thread in netns %d, want host %d", got, host)
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Errorf("host reached %s, which listens inside the new netns", ln.Addr())
	}
	// What nspawn is given and opens: the file through /proc/PID/fd.
	byFD, err := os.Open(fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer byFD.Close()
	if err := DoFile(byFD, func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Errorf("dial inside the netns by /proc/PID/fd: %v", err)
	}
}
