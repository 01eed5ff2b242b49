package cri

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/cni"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/prepare"
)

func TestWriteLine(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, tc := range []struct {
		name    string
		partial bool
		msg     string
		want    string
	}{
		{"line", false, "hello", "2026-01-02T03:04:05.000006Z stdout F hello\n"},
		{"trailing newline", false, "hello\n", "2026-01-02T03:04:05.000006Z stdout F hello\n"},
		{"empty", false, "", "2026-01-02T03:04:05.000006Z stdout F \n"},
		{"partial", true, "abc", "2026-01-02T03:04:05.000006Z stdout P abc\n"},
		{"two lines", true, "a\nb", "2026-01-02T03:04:05.000006Z stdout F a\n2026-01-02T03:04:05.000006Z stdout P b\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := writeLine(&b, ts, "stdout", tc.partial, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if b.String() != tc.want {
				t.Errorf("got %q, want %q", b.String(), tc.want)
			}
		})
	}
}

func TestEntryMessage(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`"text"`, "text"},
		{`[104,105,255]`, "hi\xff"},
	} {
		if got := string((entry{Message: []byte(tc.raw)}).message()); got != tc.want {
			t.Errorf("message(%s) = %q, want %q", tc.raw, got, tc.want)
		}
	}
}

func TestEntryStream(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"MESSAGE":"out","PRIORITY":"6"}`, "stdout"},
		{`{"MESSAGE":"touch: /x: Read-only file system","PRIORITY":"3"}`, "stderr"},
		{`{"MESSAGE":"no priority"}`, "stdout"},
		{`{"MESSAGE":"warning","PRIORITY":"4"}`, "stdout"},
	} {
		var e entry
		if err := json.Unmarshal([]byte(tc.line), &e); err != nil {
			t.Fatal(err)
		}
		if got := e.stream(); got != tc.want {
			t.Errorf("stream(%s) = %s, want %s", tc.line, got, tc.want)
		}
	}
}

func TestClampOOMScore(t *testing.T) {
	for _, tc := range []struct {
		want       int64
		floor, got int
		clamped    bool
	}{
		{500, 0, 500, false},
		{-997, 0, 0, true},
		{-997, -1000, -997, false},
		{0, 0, 0, false},
		{-5, 200, 200, true},
		{2000, -1000, 1000, true},
		{-2000, -1000, -1000, true},
	} {
		got, clamped := clampOOMScore(tc.want, tc.floor)
		if got != tc.got || clamped != tc.clamped {
			t.Errorf("clampOOMScore(%d, %d) = %d, %v; want %d, %v", tc.want, tc.floor, got, clamped, tc.got, tc.clamped)
		}
	}
}

func TestStage1Of(t *testing.T) {
	kvm := map[string]string{HandlerAnnotation: "kvm"}
	for _, tc := range []struct {
		handler     string
		annotations map[string]string
		want        string
		ok          bool
	}{
		{"", nil, "ns", true}, {"ns", nil, "ns", true}, {"kvm", nil, "kvm", true}, {"runc", nil, "", false}, {"NS", nil, "", false},
		// A static pod's annotation, when the request names no handler.
		{"", kvm, "kvm", true},
		{"", map[string]string{HandlerAnnotation: "ns", "other": "kvm"}, "ns", true},
		{"", map[string]string{HandlerAnnotation: ""}, "ns", true},
		{"", map[string]string{"other": "kvm"}, "ns", true},
		{"", map[string]string{HandlerAnnotation: "gvisor"}, "", false},
		{"", map[string]string{HandlerAnnotation: "KVM"}, "", false},
		// An explicit handler wins, and is checked itself.
		{"ns", kvm, "ns", true},
		{"kvm", map[string]string{HandlerAnnotation: "gvisor"}, "kvm", true},
		{"runc", kvm, "", false},
	} {
		got, err := stage1Of(tc.handler, tc.annotations)
		if got != tc.want || (err == nil) != tc.ok || err != nil && !errors.Is(err, errInvalid) {
			t.Errorf("stage1Of(%q, %v) = %q, %v; want %q, ok %t", tc.handler, tc.annotations, got, err, tc.want, tc.ok)
		}
	}
	_, err := stage1Of("", map[string]string{HandlerAnnotation: "gvisor"})
	if err == nil || !strings.Contains(err.Error(), HandlerAnnotation) {
		t.Errorf("an unknown annotated handler: %v, want an error naming %s", err, HandlerAnnotation)
	}
}

func TestSandboxArgs(t *testing.T) {
	ns := func(n runtimeapi.NamespaceMode, pid runtimeapi.NamespaceMode) *runtimeapi.LinuxPodSandboxConfig {
		return &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: n, Pid: pid}}}
	}
	for _, tc := range []struct {
		name string
		cfg  *runtimeapi.PodSandboxConfig
		want []string // beyond the common ones
		bad  bool
	}{
		{"plain", &runtimeapi.PodSandboxConfig{}, nil, false},
		{"hostname", &runtimeapi.PodSandboxConfig{Hostname: "web-1"}, []string{"--hostname=web-1"}, false},
		{"bad hostname", &runtimeapi.PodSandboxConfig{Hostname: "-x"}, nil, true},
		{"ports", &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{
			{HostPort: 8080, ContainerPort: 80},
			{HostPort: 53, ContainerPort: 53, Protocol: runtimeapi.Protocol_UDP, HostIp: "127.0.0.1"},
			{ContainerPort: 9000}, // no host port: not published
		}}, []string{"--publish=8080:80/tcp", "--publish=127.0.0.1:53:53/udp"}, false},
		{"sctp", &runtimeapi.PodSandboxConfig{PortMappings: []*runtimeapi.PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: runtimeapi.Protocol_SCTP}}}, nil, true},
		{"dns", &runtimeapi.PodSandboxConfig{DnsConfig: &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.local"}, Options: []string{"ndots:5"}}},
			[]string{"--dns=10.0.0.10", "--dns-search=svc.local", "--dns-opt=ndots:5"}, false},
		{"host network", &runtimeapi.PodSandboxConfig{Linux: ns(runtimeapi.NamespaceMode_NODE, runtimeapi.NamespaceMode_CONTAINER)}, []string{"--net=host"}, false},
		{"privileged", &runtimeapi.PodSandboxConfig{Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}}},
			[]string{"--privileged"}, false},
		{"host pid", &runtimeapi.PodSandboxConfig{Linux: ns(runtimeapi.NamespaceMode_POD, runtimeapi.NamespaceMode_NODE)}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sandboxArgs(tc.cfg, "ns", "/u")
			if tc.bad {
				if !errors.Is(err, errInvalid) {
					t.Fatalf("got %q, %v; want errInvalid", got, err)
				}
				return
			}
			want := append([]string{"app", "sandbox", "--stage1=ns", "--uuid-file-save=/u"}, tc.want...)
			if err != nil || !slices.Equal(got, want) {
				t.Errorf("got %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestAppOf(t *testing.T) {
	sc := func(s *runtimeapi.LinuxContainerSecurityContext) *runtimeapi.ContainerConfig {
		return &runtimeapi.ContainerConfig{Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: s}}
	}
	dir := t.TempDir()
	profile := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	chmod := profile("chmod.json", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`)
	admin := profile("admin.json", `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO","includes":{"caps":["CAP_SYS_ADMIN"]}}]}`)
	badAction := profile("action.json", `{"defaultAction":"SCMP_ACT_NOTIFY"}`)
	notJSON := profile("text.json", `allow everything`)
	localhost := func(path string) *runtimeapi.SecurityProfile {
		return &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: path}
	}
	seccomp := func(want string) func(t *testing.T, a prepare.App) {
		return func(t *testing.T, a prepare.App) {
			if a.SeccompProfile != want || a.Seccomp != "" {
				t.Errorf("seccomp profile %q (isolator %q), want %q", a.SeccompProfile, a.Seccomp, want)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		cfg   *runtimeapi.ContainerConfig
		check func(t *testing.T, a prepare.App)
		bad   bool
	}{
		{name: "command and args", cfg: &runtimeapi.ContainerConfig{Command: []string{"/bin/sh"}, Args: []string{"-c", "x"}, Envs: []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b=c")}}},
			check: func(t *testing.T, a prepare.App) {
				if !slices.Equal(a.Exec, []string{"/bin/sh"}) || !slices.Equal(a.Args, []string{"-c", "x"}) || !slices.Equal(a.Env, []string{"A=b=c"}) {
					t.Errorf("exec %q args %q env %q", a.Exec, a.Args, a.Env)
				}
			}},
		{name: "user", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{RunAsUser: &runtimeapi.Int64Value{Value: 1000}, RunAsGroup: &runtimeapi.Int64Value{Value: 2000}, ReadonlyRootfs: true, NoNewPrivs: true}),
			check: func(t *testing.T, a prepare.App) {
				if a.User != "1000" || a.Group != "2000" || !a.ReadOnly || !a.NoNewPrivs {
					t.Errorf("user %q group %q ro %t nnp %t", a.User, a.Group, a.ReadOnly, a.NoNewPrivs)
				}
			}},
		{name: "caps", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"NET_RAW", "CAP_CHOWN"}}}),
			check: func(t *testing.T, a prepare.App) {
				if a.CapsRetain != nil || !slices.Equal(a.CapsRemove, []string{"CAP_NET_RAW", "CAP_CHOWN"}) {
					t.Errorf("retain %q remove %q", a.CapsRetain, a.CapsRemove)
				}
			}},
		{name: "add ALL: every held capability", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"ALL"}}}),
			check: func(t *testing.T, a prepare.App) {
				if !slices.Contains(a.CapsRetain, "CAP_CHOWN") || slices.Contains(a.CapsRetain, "CAP_ALL") || a.CapsRemove != nil {
					t.Errorf("retain %q remove %q", a.CapsRetain, a.CapsRemove)
				}
			}},
		{name: "drop ALL", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}}),
			check: func(t *testing.T, a prepare.App) {
				if a.CapsRetain != nil || !slices.Contains(a.CapsRemove, "CAP_CHOWN") || slices.Contains(a.CapsRemove, "CAP_ALL") {
					t.Errorf("retain %q remove %q", a.CapsRetain, a.CapsRemove)
				}
			}},
		{name: "drop ALL, add one", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"all"}, AddCapabilities: []string{"NET_BIND_SERVICE"}}}),
			check: func(t *testing.T, a prepare.App) {
				if !slices.Equal(a.CapsRetain, []string{"CAP_NET_BIND_SERVICE"}) || a.CapsRemove != nil {
					t.Errorf("retain %q remove %q", a.CapsRetain, a.CapsRemove)
				}
			}},
		{name: "unconfined", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}}),
			check: seccomp("unconfined")},
		{name: "nil profile: unconfined", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{}), check: seccomp("unconfined")},
		{name: "no security context: unconfined", cfg: &runtimeapi.ContainerConfig{}, check: seccomp("unconfined")},
		{name: "runtime default", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}}),
			check: seccomp("")},
		{name: "deprecated path runtime/default", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "runtime/default"}), check: seccomp("")},
		{name: "deprecated path localhost", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "localhost/" + chmod}),
			check: seccomp(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`)},
		{name: "deprecated path unknown", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{SeccompProfilePath: "strict"}), bad: true},
		{name: "localhost", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(chmod)}),
			check: seccomp(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod","fchmodat"],"action":"SCMP_ACT_ERRNO"}]}`)},
		{name: "localhost: rules for the container's capabilities", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(admin),
			Capabilities: &runtimeapi.Capability{AddCapabilities: []string{"SYS_ADMIN"}}}),
			check: seccomp(`{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["sethostname"],"action":"SCMP_ACT_ERRNO"}]}`)},
		{name: "localhost: without them", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(admin)}),
			check: seccomp(`{"defaultAction":"SCMP_ACT_ALLOW"}`)},
		{name: "localhost missing", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(filepath.Join(dir, "none.json"))}), bad: true},
		{name: "localhost relative", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost("chmod.json")}), bad: true},
		{name: "localhost not JSON", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(notJSON)}), bad: true},
		{name: "localhost action stage2 cannot load", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Seccomp: localhost(badAction)}), bad: true},
		{name: "privileged: every capability, the profile ignored", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{Privileged: true, Seccomp: localhost(filepath.Join(dir, "none.json")),
			Capabilities: &runtimeapi.Capability{DropCapabilities: []string{"ALL"}}}),
			check: func(t *testing.T, a prepare.App) {
				if !a.Privileged || !slices.Contains(a.CapsRetain, "CAP_CHOWN") || a.CapsRemove != nil || a.SeccompProfile != "" {
					t.Errorf("privileged %t retain %q remove %q seccomp %q", a.Privileged, a.CapsRetain, a.CapsRemove, a.SeccompProfile)
				}
			}},
		{name: "masked and read-only paths", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{MaskedPaths: []string{"/bin/ls"}, ReadonlyPaths: []string{"/tmp"}}),
			check: func(t *testing.T, a prepare.App) {
				if !slices.Equal(a.MaskedPaths, []string{"/bin/ls"}) || !slices.Equal(a.ReadonlyPaths, []string{"/tmp"}) {
					t.Errorf("masked %q read-only %q", a.MaskedPaths, a.ReadonlyPaths)
				}
			}},
		{name: "bidirectional mount in a privileged container: shared", cfg: &runtimeapi.ContainerConfig{
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{Privileged: true}},
			Mounts: []*runtimeapi.Mount{{HostPath: "/a", ContainerPath: "/b/", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL},
				{HostPath: "/c", ContainerPath: "/d", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}}},
			check: func(t *testing.T, a prepare.App) {
				if !slices.Equal(a.SharedMounts, []string{"/b"}) {
					t.Errorf("shared mounts %q, want [/b]", a.SharedMounts)
				}
			}},
		{name: "bidirectional mount, not privileged", cfg: &runtimeapi.ContainerConfig{
			Mounts: []*runtimeapi.Mount{{HostPath: "/a", ContainerPath: "/b", Propagation: runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL}}}, bad: true},
		{name: "relative read-only path", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{ReadonlyPaths: []string{"tmp"}}), bad: true},
		{name: "group without user", cfg: sc(&runtimeapi.LinuxContainerSecurityContext{RunAsGroup: &runtimeapi.Int64Value{Value: 2000}}), bad: true},
		{name: "bad env", cfg: &runtimeapi.ContainerConfig{Envs: []*runtimeapi.KeyValue{{Key: "A=B"}}}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := appOf(tc.cfg)
			if tc.bad {
				if !errors.Is(err, errInvalid) {
					t.Fatalf("got %v, want errInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a)
		})
	}
}

func TestAppName(t *testing.T) {
	id := "0123456789abcdef"
	for _, tc := range []struct{ name, want string }{
		{"web", "web-01234567"},
		{"My_App.v2", "my-app-v2-01234567"},
		{"--", "c-01234567"},
	} {
		if got := appName(tc.name, id); got != tc.want {
			t.Errorf("appName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestGRPCError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{fmt.Errorf("sandbox %w", errNoRecord), codes.NotFound},
		{fmt.Errorf("x: %w", pod.ErrNotExist), codes.NotFound},
		{fmt.Errorf("x: %w", errNoImage), codes.NotFound},
		{fmt.Errorf("x: %w", errInvalid), codes.InvalidArgument},
		{fmt.Errorf("x: %w", errAmbiguous), codes.InvalidArgument},
		{fmt.Errorf("x: %w", cni.ErrPortTaken), codes.AlreadyExists},
		{fmt.Errorf("x: %w", errExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", errPrecondition), codes.FailedPrecondition},
		{errors.New("other"), codes.Unknown},
		{status.Error(codes.Aborted, "kept"), codes.Aborted},
	} {
		if got := status.Code(grpcError(tc.err)); got != tc.want {
			t.Errorf("grpcError(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func newTestServer(t *testing.T) *Server {
	s := &Server{Dir: t.TempDir(), Log: slog.New(slog.DiscardHandler)}
	for _, d := range []string{s.criDir(), s.sandboxDir(), s.containerDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestRecordRoundTrip(t *testing.T) {
	s := newTestServer(t)
	sb := &sandboxRecord{ID: "11111111-2222-3333-4444-555555555555", Handler: "kvm", CreatedAt: 42, Config: &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "p", Namespace: "n", Uid: "u", Attempt: 1},
		Labels:   map[string]string{"a": "b"}, Annotations: map[string]string{"c": "d"}, LogDirectory: "/var/log/pods/x",
		PortMappings: []*runtimeapi.PortMapping{{HostPort: 80, ContainerPort: 8080}},
	}}
	if err := s.saveSandbox(sb); err != nil {
		t.Fatal(err)
	}
	got, err := s.sandbox("11111111") // a unique prefix
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != sb.ID || got.Handler != "kvm" || got.CreatedAt != 42 || !proto.Equal(got.Config, sb.Config) {
		t.Errorf("sandbox round trip: got %+v, want %+v", got, sb)
	}
	c := &containerRecord{ID: "abcdef", SandboxID: sb.ID, App: "web-abcdef", LogPath: "/l", CreatedAt: 1, StartedAt: 2,
		Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "web"}, Command: []string{"x"}}}
	if err := s.saveContainer(c); err != nil {
		t.Fatal(err)
	}
	gc, err := s.container("abcdef")
	if err != nil || gc.App != c.App || gc.StartedAt != 2 || !proto.Equal(gc.Config, c.Config) {
		t.Errorf("container round trip: got %+v, %v", gc, err)
	}
	if cs := s.containersOf(sb.ID); len(cs) != 1 || cs[0].ID != "abcdef" {
		t.Errorf("containersOf: %v", cs)
	}
	for _, id := range []string{"", "nope", "../x", "abc.json"} {
		if _, err := s.container(id); !errors.Is(err, errNoRecord) {
			t.Errorf("container(%q): %v, want errNoRecord", id, err)
		}
	}
	if err := s.saveContainer(&containerRecord{ID: "abcxyz", Config: &runtimeapi.ContainerConfig{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.container("abc"); !errors.Is(err, errAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.containerDir(), "abcdef.json.tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
}

// Removing or stopping a sandbox or container that does not exist
// succeeds, as containerd's does (the CRI's stops and removes are
// idempotent: critest's Idempotence specs).
func TestMissingSandbox(t *testing.T) {
	s := newTestServer(t)
	if _, err := s.RemovePodSandbox(context.Background(), &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "gone"}); err != nil {
		t.Errorf("RemovePodSandbox of a missing sandbox: %v", err)
	}
	if _, err := s.StopPodSandbox(context.Background(), &runtimeapi.StopPodSandboxRequest{PodSandboxId: "gone"}); err != nil {
		t.Errorf("StopPodSandbox of a missing sandbox: %v", err)
	}
	if _, err := s.StopContainer(context.Background(), &runtimeapi.StopContainerRequest{ContainerId: "gone"}); err != nil {
		t.Errorf("StopContainer of a missing container: %v", err)
	}
	if _, err := s.RemoveContainer(context.Background(), &runtimeapi.RemoveContainerRequest{ContainerId: "gone"}); err != nil {
		t.Errorf("RemoveContainer of a missing container: %v", err)
	}
	if _, err := s.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: "gone"}); status.Code(err) != codes.NotFound {
		t.Errorf("ContainerStatus of a missing container: %v, want NotFound", err)
	}
	if _, err := s.CreateContainer(context.Background(), &runtimeapi.CreateContainerRequest{PodSandboxId: "gone", Config: &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "x"}}}); status.Code(err) != codes.NotFound {
		t.Errorf("CreateContainer in a missing sandbox: %v, want NotFound", err)
	}
}

// Supplemental groups reach the app (appc's supplementaryGIDs).
func TestSupplementalGroups(t *testing.T) {
	a, err := appOf(&runtimeapi.ContainerConfig{Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
		RunAsUser: &runtimeapi.Int64Value{Value: 1000}, SupplementalGroups: []int64{1234, 5678}}}})
	if err != nil || !slices.Equal(a.SupplementaryGIDs, []int{1234, 5678}) {
		t.Errorf("appOf: %v, supplementary %v; want [1234 5678]", err, a.SupplementaryGIDs)
	}
}

func TestCheckSysctls(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     map[string]string
		stage1  string
		hostNet bool
		ok      bool
	}{
		{"ipc and net", map[string]string{"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "100", "kernel.sem": "1 2 3 4", "net.ipv4.ip_forward": "1"}, "ns", false, true},
		{"host-wide", map[string]string{"kernel.panic": "1"}, "ns", false, false},
		{"vm", map[string]string{"kernel.shm_rmid_forced": "1"}, "kvm", false, false},
		{"net on the host's network", map[string]string{"net.ipv4.ip_forward": "1"}, "ns", true, false},
		{"ipc on the host's network", map[string]string{"kernel.msgmax": "10000"}, "ns", true, true},
		{"malformed", map[string]string{"net.ipv4/../../kernel/panic": "1"}, "ns", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkSysctls(tc.cfg, tc.stage1, tc.hostNet)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, errInvalid)) {
				t.Errorf("checkSysctls(%v) = %v, want ok=%t", tc.cfg, err, tc.ok)
			}
		})
	}
}

// A container's status lists the mounts it was created with.
func TestStatusMounts(t *testing.T) {
	s := newTestServer(t)
	mounts := []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: "/srv/data", Readonly: true}}
	if err := s.saveContainer(&containerRecord{ID: "m1", SandboxID: "gone", App: "m", Config: &runtimeapi.ContainerConfig{Mounts: mounts}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.ContainerStatus(context.Background(), &runtimeapi.ContainerStatusRequest{ContainerId: "m1"})
	if err != nil || len(r.GetStatus().GetMounts()) != 1 || !proto.Equal(r.GetStatus().GetMounts()[0], mounts[0]) {
		t.Errorf("ContainerStatus mounts: %v, %v; want %v", r.GetStatus().GetMounts(), err, mounts)
	}
}

func TestTimed(t *testing.T) {
	var buf bytes.Buffer
	s := &Server{Log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	info := &grpc.UnaryServerInfo{FullMethod: "/runtime.v1.RuntimeService/RunPodSandbox"}
	want := errors.New("no pod")
	resp, err := s.timed(context.Background(), "req", info, func(ctx context.Context, req any) (any, error) {
		return "resp", want
	})
	if resp != "resp" || err != want {
		t.Errorf("timed = %v, %v; want the handler's resp, %v", resp, err, want)
	}
	for _, w := range []string{"method=RunPodSandbox", "took=", `err="no pod"`} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("debug log %q lacks %q", buf.String(), w)
		}
	}
}
