package nspawn

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFilterKey(t *testing.T) {
	base := []string{"--boot", "--directory=stage1/rootfs", "--machine=skiff-a", "--uuid=a", "--register=no", "--keep-unit",
		"--private-network", "--hostname=a", "--bind=/x:/y", "systemd.log_level=crit"}
	key := func(args []string) string {
		k, err := filterKey("/bin/sh", args, []string{"PATH=/bin"}) // any binary: the key names it
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := key(base)
	for _, c := range []struct {
		name string
		args []string
		same bool
	}{
		{"another pod's names and binds", []string{"--boot", "--directory=other", "--machine=skiff-b", "--uuid=b", "--register=no", "--keep-unit",
			"--private-network", "--hostname=b", "--bind-ro=/z:/w", "systemd.log_level=debug"}, true},
		{"more capabilities", append(base[:len(base):len(base)], "--capability=CAP_SYS_TIME"), false},
		{"the host's network", slices.DeleteFunc(slices.Clone(base), func(a string) bool { return a == "--private-network" }), false},
		{"a network namespace of its own", append(slices.DeleteFunc(slices.Clone(base), func(a string) bool { return a == "--private-network" }), "--network-namespace-path=/proc/1/fd/7"), false},
	} {
		if got := key(c.args) == k; got != c.same {
			t.Errorf("%s: same key = %v, want %v", c.name, got, c.same)
		}
	}
	a := key(append(base[:len(base):len(base)], "--network-namespace-path=/proc/1/fd/7", "--private-users=65536:65536"))
	b := key(append(base[:len(base):len(base)], "--network-namespace-path=/proc/2/fd/9", "--private-users=131072:65536"))
	if a != b {
		t.Error("which namespace or user range changed the key")
	}
	for _, env := range [][]string{{"SYSTEMD_SUPPRESS_SYNC=1"}, {"SYSTEMD_LOG_SECCOMP=1"}} {
		if k2, err := filterKey("/bin/sh", base, env); err != nil || k2 == k {
			t.Errorf("nspawn's environment %q: key %q, %v; want another key", env, k2, err)
		}
	}
	if k2, err := filterKey("/bin/true", base, nil); err != nil || k2 == k {
		t.Errorf("another nspawn binary: key %q, %v; want another key", k2, err)
	}
}

// TestReadRoots: a learned filter is trusted only from root's own files.
func TestReadRoots(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files of other owners")
	}
	good := []byte("filters")
	for _, c := range []struct {
		name  string
		setup func(dir, file string)
		want  string // "" for success
	}{
		{"root's", func(dir, file string) {}, ""},
		{"another owner's file", func(dir, file string) { os.Chown(file, 65534, 65534) }, "not root's alone"},
		{"group-writable file", func(dir, file string) { os.Chmod(file, 0o620) }, "not root's alone"},
		{"world-writable dir", func(dir, file string) { os.Chmod(dir, 0o777) }, "not root's alone"},
		{"another owner's dir", func(dir, file string) { os.Chown(dir, 65534, 65534) }, "not root's alone"},
		{"a symlink", func(dir, file string) {
			os.WriteFile(file+".real", good, 0o600)
			os.Remove(file)
			os.Symlink(file+".real", file)
		}, "not root's alone"},
		{"missing", func(dir, file string) { os.Remove(file) }, "no such file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "nspawn-seccomp")
			file := filepath.Join(dir, "key")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, good, 0o600); err != nil {
				t.Fatal(err)
			}
			c.setup(dir, file)
			_, err := readRoots(file)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("readCached: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("readCached: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestLibHash: another version of one of nspawn's mapped files (a
// package upgrade) is another hash, so a filter learned before is not used.
func TestLibHash(t *testing.T) {
	files, err := mappedFiles(os.Getpid())
	if err != nil || len(files) == 0 {
		t.Fatalf("mappedFiles(self) = %v, %v", files, err)
	}
	lib := filepath.Join(t.TempDir(), "libseccomp.so.2")
	if err := os.WriteFile(lib, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := libHash(append(files, lib))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := libHash(append(files, lib)); again != before {
		t.Fatal("libHash differs for the same files")
	}
	os.Remove(lib)
	if err := os.WriteFile(lib, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	if after, _ := libHash(append(files, lib)); after == before {
		t.Error("a replaced library has the same hash")
	}
	if _, err := libHash([]string{lib + ".gone"}); err == nil {
		t.Error("a missing library hashed")
	}
}
