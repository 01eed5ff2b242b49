package launch

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
)

// denies reports whether profile sc refuses call by name (skiff's
// profiles are deny-lists).
func denies(sc *specs.LinuxSeccomp, call string) bool {
	for _, r := range sc.Syscalls {
		if r.Action != specs.ActAllow && len(r.Args) == 0 && slices.Contains(r.Names, call) {
			return true
		}
	}
	return false
}

func TestAddCaps(t *testing.T) {
	custom := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"ptrace"}, Action: specs.ActErrno}}}
	caps := func() []string { return slices.Clone(appspec.DefaultCaps) }
	tests := []struct {
		name        string
		spec        specs.Spec
		add         []string
		err         error
		wantPtrace  bool // the profile afterwards lets ptrace through
		wantAmbient bool
	}{
		{name: "default profile is remade", add: []string{"CAP_SYS_PTRACE"}, wantPtrace: true, wantAmbient: true,
			spec: specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps(), Effective: caps(), Permitted: caps()}},
				Linux: &specs.Linux{Seccomp: appspec.DefaultSeccomp(appspec.DefaultCaps)}}},
		{name: "non-root app without capabilities", add: []string{"CAP_SYS_PTRACE"}, wantPtrace: true, wantAmbient: true,
			spec: specs.Spec{Process: &specs.Process{User: specs.User{UID: 101}, Capabilities: &specs.LinuxCapabilities{Bounding: caps()}},
				Linux: &specs.Linux{Seccomp: appspec.DefaultSeccomp(appspec.DefaultCaps)}}},
		{name: "the app's own profile is kept", add: []string{"CAP_SYS_PTRACE"}, wantPtrace: false, wantAmbient: true,
			spec: specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps()}}, Linux: &specs.Linux{Seccomp: custom}}},
		{name: "nothing to add", wantPtrace: false,
			spec: specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps()}},
				Linux: &specs.Linux{Seccomp: appspec.DefaultSeccomp(appspec.DefaultCaps)}}},
		{name: "unknown capability", add: []string{"CAP_NO_SUCH"}, err: ErrUnsupported,
			spec: specs.Spec{Process: &specs.Process{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			err := AddCaps(&s, tt.add)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if got := !denies(s.Linux.Seccomp, "ptrace"); got != tt.wantPtrace {
				t.Errorf("ptrace allowed = %v, want %v", got, tt.wantPtrace)
			}
			c := s.Process.Capabilities
			for _, set := range [][]string{c.Bounding, c.Effective, c.Permitted, c.Inheritable, c.Ambient} {
				for _, a := range tt.add {
					if !slices.Contains(set, a) {
						t.Errorf("%s missing from a set: %v", a, set)
					}
				}
			}
			if got := len(c.Ambient) > 0; got != tt.wantAmbient {
				t.Errorf("ambient = %v, want non-empty %v", c.Ambient, tt.wantAmbient)
			}
			if tt.wantPtrace && !denies(s.Linux.Seccomp, "keyctl") {
				t.Errorf("remade profile no longer refuses keyctl")
			}
		})
	}
}

func TestSetEnv(t *testing.T) {
	got := SetEnv([]string{"PATH=/usr/bin", "HOME=/", "PATHX=1"}, "PATH", ToolsPath("/t"))
	want := []string{"HOME=/", "PATHX=1", "PATH=/t/usr/local/bin:/t/usr/bin:/t/bin:/t/usr/sbin:/t/sbin"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// PrepareTools makes the mount point inside the app's root without
// following a symlink the app planted, and the last session removes it.
func TestPrepareTools(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (open_tree, mount_setattr): run as root, as make test does")
	}
	tools := t.TempDir()
	os.WriteFile(filepath.Join(tools, "tool"), []byte("x"), 0o755)
	outside := t.TempDir()
	tests := []struct {
		name    string
		setup   func(root string)
		wantErr bool
	}{
		{"a plain /dev", func(r string) { os.Mkdir(filepath.Join(r, "dev"), 0o755) }, false},
		{"/dev is a symlink out of the root", func(r string) { os.Symlink(outside, filepath.Join(r, "dev")) }, true},
		{"the mount point is a symlink", func(r string) {
			os.Mkdir(filepath.Join(r, "dev"), 0o755)
			os.Symlink(outside, filepath.Join(r, "dev", ".skiff-debug"))
		}, true},
		{"the mount point is a file", func(r string) {
			os.Mkdir(filepath.Join(r, "dev"), 0o755)
			os.WriteFile(filepath.Join(r, "dev", ".skiff-debug"), nil, 0o644)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := t.TempDir()
			tt.setup(r)
			root, err := unix.Open(r, unix.O_PATH|unix.O_DIRECTORY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(root)
			tree, point, remove, err := PrepareTools(root, tools)
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("made %v outside the root", ents)
			}
			if tt.wantErr {
				if err == nil {
					t.Errorf("PrepareTools succeeded")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(tree)
			defer unix.Close(point)
			mp := filepath.Join(r, "dev", ".skiff-debug")
			var a, b unix.Stat_t
			if unix.Fstat(point, &a) != nil || unix.Lstat(mp, &b) != nil || a.Ino != b.Ino {
				t.Errorf("point is not %s", mp)
			}
			// A second session at once: the first to end leaves it.
			tree2, point2, remove2, err := PrepareTools(root, tools)
			if err != nil {
				t.Fatal(err)
			}
			unix.Close(tree2)
			unix.Close(point2)
			if err := remove(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(mp); err != nil {
				t.Errorf("the first session to end removed the mount point of the other: %v", err)
			}
			if err := remove2(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(mp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the last session left %s: %v", mp, err)
			}
		})
	}
}
