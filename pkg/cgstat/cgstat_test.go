package cgstat

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestParseProcCgroup(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"0::/skiff/u/payload/init.scope\n", "/skiff/u/payload/init.scope", true},
		{"9:name=systemd:/a\n4:memory:/m\n0::/skiff/u\n", "/skiff/u", true},
		{"4:memory:/m\n", "", false},
	} {
		got, err := parseProcCgroup(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseProcCgroup(%q) = %q, %v; want %q, ok=%t", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func write(t *testing.T, dir, name, body string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	t.Run("memory controller", func(t *testing.T) {
		d := t.TempDir()
		write(t, d, "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
		write(t, d, "memory.current", "10000\n")
		write(t, d, "memory.stat", "anon 6000\nfile 4000\ninactive_file 3000\n")
		u, err := Read(d)
		if err != nil {
			t.Fatal(err)
		}
		if want := (Usage{CPUNanos: 1500000, WorkingSet: 7000, RSS: 6000}); u != want {
			t.Errorf("Read = %+v, want %+v", u, want)
		}
	})
	t.Run("no memory controller: the processes' resident set", func(t *testing.T) {
		d := t.TempDir()
		write(t, d, "cpu.stat", "usage_usec 7\n")
		sub := filepath.Join(d, "child")
		os.Mkdir(sub, 0o755)
		write(t, sub, "cgroup.procs", strconv.Itoa(os.Getpid())+"\n999999999\n")
		u, err := Read(d)
		if err != nil {
			t.Fatal(err)
		}
		if u.CPUNanos != 7000 || u.WorkingSet == 0 || u.RSS != u.WorkingSet {
			t.Errorf("Read = %+v, want 7000 ns and this process's resident set", u)
		}
	})
	t.Run("not a cgroup", func(t *testing.T) {
		if _, err := Read(t.TempDir()); err == nil {
			t.Error("Read of a dir without cpu.stat: no error")
		}
	})
}

func TestDiskUsage(t *testing.T) {
	d := t.TempDir()
	write(t, d, "a", string(make([]byte, 8192)))
	os.Mkdir(filepath.Join(d, "sub"), 0o755)
	write(t, filepath.Join(d, "sub"), "b", "x")
	if err := os.Link(filepath.Join(d, "a"), filepath.Join(d, "sub", "a-link")); err != nil {
		t.Fatal(err)
	}
	b, n, err := DiskUsage(d)
	if err != nil {
		t.Fatal(err)
	}
	// d, a, sub, b: the hard link counts once.
	if n != 4 || b < 8192 {
		t.Errorf("DiskUsage = %d bytes, %d inodes; want >= 8192 and 4", b, n)
	}
	if _, _, err := DiskUsage(filepath.Join(d, "missing")); err == nil {
		t.Error("DiskUsage of a missing dir: no error")
	}
}
