package nspawn

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/seccompcopy"
)

func TestFilterKey(t *testing.T) {
	base := []string{"--boot", "--directory=stage1/rootfs", "--machine=skiff-a", "--uuid=a", "--register=no", "--keep-unit",
		"--private-network", "--hostname=a", "--bind=/x:/y", "systemd.log_level=crit"}
	key := func(args []string) string {
		k, err := filterKey("/bin/sh", args) // any binary: the key names it
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
	if k2, err := filterKey("/bin/true", base); err != nil || k2 == k {
		t.Errorf("another nspawn binary: key %q, %v; want another key", k2, err)
	}
}

// TestReadCached: a learned filter is trusted only from root's own files.
func TestReadCached(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make files of other owners")
	}
	good := seccompcopy.Marshal([]seccompcopy.Filter{{Prog: []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}}})
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
		{"not filters", func(dir, file string) { os.WriteFile(file, []byte("#!/bin/sh\n"), 0o600) }, "not a filter file"},
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
			_, err := readCached(file)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("readCached: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("readCached: %v, want an error with %q", err, c.want)
			}
		})
	}
}
