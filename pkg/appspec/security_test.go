package appspec

import (
	"errors"
	"os"
	"reflect"
	"slices"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	podabi "github.com/skiffpod/skiff/pkg/pod"
)

// TestSecurityAnnotations checks the CRI's security context on top of the
// isolators: a seccomp filter replacing the default (or none), paths added
// to skiff's, and what privileged lifts.
func TestSecurityAnnotations(t *testing.T) {
	eperm := uint(1)
	chmod := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
	tests := []struct {
		name        string
		annotations map[string]string
		wantErr     bool
		check       func(t *testing.T, s *specs.Spec)
	}{
		{name: "none: the default profile, skiff's paths, /sys read-only", check: func(t *testing.T, s *specs.Spec) {
			if !reflect.DeepEqual(s.Linux.Seccomp, DefaultSeccomp(DefaultCaps)) {
				t.Errorf("seccomp = %+v, want the default", s.Linux.Seccomp)
			}
			if !slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
				t.Errorf("masked %v, read-only %v: skiff's are missing", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
			}
			if o := mountOf(t, s, "/sys").Options; !slices.Contains(o, "ro") {
				t.Errorf("/sys options %v, want ro", o)
			}
		}},
		{name: "unconfined", annotations: map[string]string{podabi.AnnotationSeccomp: "unconfined"}, check: func(t *testing.T, s *specs.Spec) {
			if s.Linux.Seccomp != nil || s.Process.NoNewPrivileges {
				t.Errorf("seccomp %+v, no_new_privs %v: want none, false", s.Linux.Seccomp, s.Process.NoNewPrivileges)
			}
		}},
		{name: "a profile", annotations: map[string]string{podabi.AnnotationSeccomp: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}`},
			check: func(t *testing.T, s *specs.Spec) {
				if !reflect.DeepEqual(s.Linux.Seccomp, chmod) {
					t.Errorf("seccomp = %+v, want %+v", s.Linux.Seccomp, chmod)
				}
			}},
		{name: "paths add to skiff's", annotations: map[string]string{podabi.AnnotationMaskedPaths: `["/bin/ls","/proc/kcore"]`, podabi.AnnotationReadonlyPaths: `["/tmp/"]`},
			check: func(t *testing.T, s *specs.Spec) {
				n, kcore := len(s.Linux.MaskedPaths), 0
				for _, p := range s.Linux.MaskedPaths {
					if p == "/proc/kcore" {
						kcore++
					}
				}
				if s.Linux.MaskedPaths[n-1] != "/bin/ls" || kcore != 1 {
					t.Errorf("masked %v", s.Linux.MaskedPaths)
				}
				if !slices.Contains(s.Linux.ReadonlyPaths, "/tmp") || !slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
					t.Errorf("read-only %v", s.Linux.ReadonlyPaths)
				}
			}},
		{name: "privileged", annotations: map[string]string{podabi.AnnotationPrivileged: "true", podabi.AnnotationSeccomp: `{"defaultAction":"SCMP_ACT_ALLOW"}`, podabi.AnnotationMaskedPaths: `["/a"]`},
			check: func(t *testing.T, s *specs.Spec) {
				if s.Linux.Seccomp != nil || s.Linux.MaskedPaths != nil || s.Linux.ReadonlyPaths != nil {
					t.Errorf("seccomp %+v, masked %v, read-only %v: want none", s.Linux.Seccomp, s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
				for _, d := range []string{"/sys", "/sys/fs/cgroup"} {
					if o := mountOf(t, s, d).Options; slices.Contains(o, "ro") {
						t.Errorf("%s options %v: read-only", d, o)
					}
				}
			}},
		{name: "shared mounts, cleaned", annotations: map[string]string{podabi.AnnotationSharedMounts: `["/mnt/a/","/b"]`},
			check: func(t *testing.T, s *specs.Spec) {
				if got, want := s.Annotations[podabi.AnnotationSharedMounts], `["/mnt/a","/b"]`; got != want {
					t.Errorf("spec annotation %s = %q, want %q", podabi.AnnotationSharedMounts, got, want)
				}
			}},
		{name: "no shared mounts", check: func(t *testing.T, s *specs.Spec) {
			if v, ok := s.Annotations[podabi.AnnotationSharedMounts]; ok {
				t.Errorf("spec annotation %s = %q, want none", podabi.AnnotationSharedMounts, v)
			}
		}},
		{name: "relative shared mount", annotations: map[string]string{podabi.AnnotationSharedMounts: `["mnt"]`}, wantErr: true},
		{name: "relative path", annotations: map[string]string{podabi.AnnotationReadonlyPaths: `["tmp"]`}, wantErr: true},
		{name: "bad profile", annotations: map[string]string{podabi.AnnotationSeccomp: `{`}, wantErr: true},
	}
	root, err := os.OpenRoot("testdata/rootfs")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pm, ra := pod(t, appJSON("0", "0", ""), "")
			for k, v := range tt.annotations {
				ra.Annotations.Set(types.ACIdentifier(k), v)
			}
			s, err := Build(pm, ra, &schema.ImageManifest{}, root, Options{})
			if tt.wantErr {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

func mountOf(t *testing.T, s *specs.Spec, dst string) specs.Mount {
	t.Helper()
	for _, m := range s.Mounts {
		if m.Destination == dst {
			return m
		}
	}
	t.Fatalf("no mount at %s", dst)
	return specs.Mount{}
}

// TestParseSeccompProfile reads profiles as Docker and critest write them.
func TestParseSeccompProfile(t *testing.T) {
	errno := func(n uint) *uint { return &n }
	tests := []struct {
		name    string
		profile string
		caps    []string
		want    *specs.LinuxSeccomp
		wantErr error
	}{
		{name: "critest's chmod profile", profile: `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"chmod", "fchmodat"}, Action: specs.ActErrno}}}},
		{name: "allow-list with an errno, the old name, args",
			profile: `{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"architectures":["SCMP_ARCH_X86_64"],"syscalls":[` +
				`{"name":"read","action":"SCMP_ACT_ALLOW"},` +
				`{"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: errno(38), Syscalls: []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: specs.ActAllow},
				{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 8, Op: specs.OpEqualTo}}}}}},
		{name: "rules by capability and architecture, unknown calls dropped", caps: []string{"CAP_SYS_ADMIN"},
			profile: `{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[` +
				`{"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}},` +
				`{"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_PTRACE"]}},` +
				`{"names":["umount2"],"action":"SCMP_ACT_ALLOW","excludes":{"caps":["SYS_ADMIN"]}},` +
				`{"names":["sync"],"action":"SCMP_ACT_ALLOW","includes":{"arches":["no-such-arch"]}},` +
				`{"names":["no_such_call"],"action":"SCMP_ACT_ALLOW"}]}`,
			want: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"mount"}, Action: specs.ActAllow}}}},
		{name: "no default action", profile: `{"syscalls":[]}`, wantErr: ErrIsolator},
		{name: "flags", profile: `{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}`, wantErr: ErrIsolator},
		{name: "listener", profile: `{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/x.sock"}`, wantErr: ErrIsolator},
		{name: "not JSON", profile: `defaultAction: allow`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSeccompProfile([]byte(tt.profile), tt.caps)
			if tt.want == nil {
				if err == nil || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
				for i := range got.Syscalls {
					t.Logf("rule %d: %+v", i, got.Syscalls[i])
				}
			}
		})
	}
}

// TestHostDevices: a privileged app of a privileged pod gets the devices
// of pod.AnnotationHostDevices after its own; any other app is refused.
func TestHostDevices(t *testing.T) {
	root, err := os.OpenRoot("testdata/rootfs")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	devs := `[{"path":"/dev/kmsg","type":"c","major":1,"minor":11},{"path":"/dev/null","type":"c","major":1,"minor":3}]`
	for _, tt := range []struct {
		name             string
		podPriv, appPriv bool
		devices          string
		want             int // devices added to the default ones; -1: an error
	}{
		{"privileged", true, true, devs, 1},
		{"none asked", true, true, "", 0},
		{"pod not privileged", false, true, devs, -1},
		{"app not privileged", true, false, devs, -1},
		{"not a device", true, true, `[{"path":"/dev/x","type":"p"}]`, -1},
		{"relative", true, true, `[{"path":"dev/x","type":"c"}]`, -1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pm, ra := pod(t, appJSON("0", "0", ""), "")
			if tt.podPriv {
				pm.Annotations.Set(podabi.AnnotationPrivileged, "true")
			}
			if tt.appPriv {
				ra.Annotations.Set(podabi.AnnotationPrivileged, "true")
			}
			if tt.devices != "" {
				ra.Annotations.Set(podabi.AnnotationHostDevices, tt.devices)
			}
			s, err := Build(pm, ra, &schema.ImageManifest{}, root, Options{})
			if tt.want < 0 {
				if err == nil {
					t.Fatal("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := len(s.Linux.Devices) - len(devices()); got != tt.want {
				t.Errorf("%d devices added, want %d: %+v", got, tt.want, s.Linux.Devices)
			}
			if tt.want == 1 && s.Linux.Devices[len(s.Linux.Devices)-1].Path != "/dev/kmsg" {
				t.Errorf("devices %+v: /dev/kmsg not last", s.Linux.Devices)
			}
		})
	}
}
