package launch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
)

// runFilter runs prog in x/net/bpf's VM on a struct seccomp_data. The VM
// loads words big-endian where the kernel loads them in host order, so
// each 32-bit half is written big-endian at the offset the kernel reads
// it from on a little-endian host.
func runFilter(t *testing.T, prog Filter, arch uint32, nr uint32, args ...uint64) uint32 {
	t.Helper()
	insts := make([]bpf.Instruction, len(prog))
	for i, f := range prog {
		insts[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}.Disassemble()
	}
	vm, err := bpf.NewVM(insts)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], arch)
	for i, a := range args {
		binary.BigEndian.PutUint32(data[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(data[20+8*i:], uint32(a>>32))
	}
	got, err := vm.Run(data)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(got)
}

// TestDefaultProfile compiles appspec's default profile and runs it.
func TestDefaultProfile(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		nosys = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	)
	sigchld := uint64(unix.SIGCHLD)
	admin := append([]string{"CAP_SYS_ADMIN", "CAP_SYS_PTRACE"}, appspec.DefaultCaps...)
	tests := []struct {
		name string
		caps []string
		call string
		args []uint64
		want uint32
	}{
		{"unshare user ns", appspec.DefaultCaps, "unshare", []uint64{unix.CLONE_NEWUSER}, eperm},
		{"unshare mount ns", appspec.DefaultCaps, "unshare", []uint64{unix.CLONE_NEWNS}, eperm},
		{"unshare time ns", appspec.DefaultCaps, "unshare", []uint64{unix.CLONE_NEWTIME}, eperm},
		{"unshare files", appspec.DefaultCaps, "unshare", []uint64{unix.CLONE_FILES | unix.CLONE_FS}, allow},
		{"clone user ns", appspec.DefaultCaps, "clone", []uint64{unix.CLONE_NEWUSER | sigchld}, eperm},
		{"clone net ns, upper half set", appspec.DefaultCaps, "clone", []uint64{1<<40 | unix.CLONE_NEWNET}, eperm},
		{"fork", appspec.DefaultCaps, "clone", []uint64{sigchld}, allow},
		{"thread", appspec.DefaultCaps, "clone", []uint64{unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD | unix.CLONE_SYSVSEM}, allow},
		{"clone3", appspec.DefaultCaps, "clone3", nil, nosys},
		{"keyctl", appspec.DefaultCaps, "keyctl", nil, eperm},
		{"add_key", appspec.DefaultCaps, "add_key", nil, eperm},
		{"request_key", appspec.DefaultCaps, "request_key", nil, eperm},
		{"vsock", appspec.DefaultCaps, "socket", []uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, eperm},
		{"vsock, upper half set", appspec.DefaultCaps, "socket", []uint64{0xffffffff<<32 | unix.AF_VSOCK}, eperm},
		{"inet socket", appspec.DefaultCaps, "socket", []uint64{unix.AF_INET, unix.SOCK_STREAM}, allow},
		{"unix socket", appspec.DefaultCaps, "socket", []uint64{unix.AF_UNIX, unix.SOCK_DGRAM}, allow},
		{"mount", appspec.DefaultCaps, "mount", nil, eperm},
		{"kexec", appspec.DefaultCaps, "kexec_load", nil, eperm},
		{"bpf", appspec.DefaultCaps, "bpf", nil, eperm},
		{"perf_event_open", appspec.DefaultCaps, "perf_event_open", nil, eperm},
		{"ptrace", appspec.DefaultCaps, "ptrace", nil, eperm},
		{"openat", appspec.DefaultCaps, "openat", nil, allow},
		{"chroot (CAP_SYS_CHROOT is a default)", appspec.DefaultCaps, "chroot", nil, allow},
		{"admin: unshare user ns", admin, "unshare", []uint64{unix.CLONE_NEWUSER}, allow},
		{"admin: mount", admin, "mount", nil, allow},
		{"admin: bpf", admin, "bpf", nil, allow},
		{"admin: clone3", admin, "clone3", nil, allow},
		{"ptrace cap: ptrace", admin, "ptrace", nil, allow},
		{"admin: keyctl still refused", admin, "keyctl", nil, eperm},
		{"admin: vsock still refused", admin, "socket", []uint64{unix.AF_VSOCK}, eperm},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := Compile(appspec.DefaultSeccomp(tt.caps))
			if err != nil {
				t.Fatal(err)
			}
			nr, ok := info.SyscallNames[tt.call]
			if !ok {
				t.Skipf("no %s on %s", tt.call, info.Name)
			}
			if got := runFilter(t, prog, uint32(info.ID), uint32(nr), tt.args...); got != tt.want {
				t.Errorf("%s%x = %#x, want %#x", tt.call, tt.args, got, tt.want)
			}
		})
	}
}

func TestFiltersRoundTrip(t *testing.T) {
	a, err := Compile(appspec.DefaultSeccomp(appspec.DefaultCaps))
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range [][]Filter{nil, {a}, {a, {{Code: 6, K: unix.SECCOMP_RET_ALLOW}}}} {
		var b bytes.Buffer
		if err := WriteFilters(&b, in); err != nil {
			t.Fatal(err)
		}
		out, err := ReadFilters(&b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("round trip of %d filters gave %d", len(in), len(out))
		}
	}
	for _, bad := range [][]byte{{1, 0, 0, 0}, {0, 0, 0, 0}, {0xff, 0xff, 0, 0}, {2, 0}} {
		if _, err := ReadFilters(bytes.NewReader(bad)); err == nil {
			t.Errorf("ReadFilters(%x) accepted", bad)
		}
	}
}

// TestArgRules checks argument conditions beyond the default profile's:
// conditions AND, and what cannot be checked on 32 bits is refused.
func TestArgRules(t *testing.T) {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Skip(err)
	}
	eperm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	both := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
		Names: []string{"socket"}, Action: specs.ActErrno,
		Args: []specs.LinuxSeccompArg{
			{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo},
			{Index: 1, Value: unix.SOCK_RAW, Op: specs.OpEqualTo},
		}}}}
	notUnix := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
		Names: []string{"socket"}, Action: specs.ActErrno,
		Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_UNIX, Op: specs.OpNotEqual}}}}}
	socket := uint32(info.SyscallNames["socket"])
	tests := []struct {
		name string
		sc   *specs.LinuxSeccomp
		args []uint64
		want uint32
	}{
		{"both hold", both, []uint64{unix.AF_INET, unix.SOCK_RAW}, eperm},
		{"one holds", both, []uint64{unix.AF_INET, unix.SOCK_STREAM}, unix.SECCOMP_RET_ALLOW},
		{"not equal holds", notUnix, []uint64{unix.AF_INET}, eperm},
		{"not equal fails", notUnix, []uint64{unix.AF_UNIX}, unix.SECCOMP_RET_ALLOW},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := Compile(tt.sc)
			if err != nil {
				t.Fatal(err)
			}
			if got := runFilter(t, prog, uint32(info.ID), socket, tt.args...); got != tt.want {
				t.Errorf("socket%x = %#x, want %#x", tt.args, got, tt.want)
			}
		})
	}
	for _, a := range []specs.LinuxSeccompArg{
		{Index: 0, Value: 1 << 33, Op: specs.OpEqualTo},
		{Index: 0, Value: 1, Op: specs.OpGreaterThan},
		{Index: 6, Value: 1, Op: specs.OpEqualTo},
	} {
		sc := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
			Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{a}}}}
		if _, err := Compile(sc); !errors.Is(err, ErrUnsupported) {
			t.Errorf("condition %+v: err = %v, want ErrUnsupported", a, err)
		}
	}
}
