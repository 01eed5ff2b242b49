package launch

import (
	"errors"
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

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
