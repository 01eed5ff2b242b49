package appspec

import (
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The default seccomp profile (docs/seccomp.md) is a deny-list: it refuses
// with EPERM the calls Docker's default profile leaves out, unless the
// app's bounding set holds the capability that Docker's profile would
// allow them for. It applies when the app has no seccomp isolator.

// denyAlways are refused whatever the capabilities: the kernel keyring is
// not namespaced, kexec and module-era calls have no place in a pod, and
// userfaultfd and io_uring are the usual ways into kernel exploits.
var denyAlways = []string{
	"add_key", "keyctl", "request_key",
	"kexec_load", "kexec_file_load",
	"create_module", "get_kernel_syms", "query_module", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl",
	"vm86", "vm86old", "lookup_dcookie",
	"userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
}

// denyUnless are refused unless the bounding set holds the capability.
var denyUnless = map[string][]string{
	"CAP_SYS_ADMIN": {
		"mount", "umount", "umount2", "pivot_root", "setns", "swapon", "swapoff",
		"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
		"name_to_handle_at", "quotactl", "quotactl_fd", "fanotify_init",
		"setdomainname", "sethostname",
	},
	"CAP_SYS_PTRACE":      {"ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"},
	"CAP_SYS_BOOT":        {"reboot"},
	"CAP_SYS_MODULE":      {"init_module", "finit_module", "delete_module"},
	"CAP_SYS_PACCT":       {"acct"},
	"CAP_SYS_RAWIO":       {"iopl", "ioperm"},
	"CAP_SYS_TIME":        {"settimeofday", "stime", "clock_settime", "clock_adjtime"},
	"CAP_SYS_NICE":        {"get_mempolicy", "set_mempolicy", "mbind", "move_pages", "migrate_pages"},
	"CAP_SYS_TTY_CONFIG":  {"vhangup"},
	"CAP_DAC_READ_SEARCH": {"open_by_handle_at"},
	"CAP_SYSLOG":          {"syslog"},
	"CAP_BPF":             {"bpf"},
	"CAP_PERFMON":         {"perf_event_open"},
}

// nsFlags are clone's namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|
// NEWUSER|NEWPID|NEWNET), refused without CAP_SYS_ADMIN as Docker does;
// unshare also checks CLONE_NEWTIME, whose bit is part of clone's exit
// signal.
const nsFlags = unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC |
	unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// DefaultSeccomp returns skiff's default profile for an app whose bounding
// set is caps.
func DefaultSeccomp(caps []string) *specs.LinuxSeccomp {
	eperm, enosys := uint(unix.EPERM), uint(unix.ENOSYS)
	deny := slices.Clone(denyAlways)
	for c, calls := range denyUnless {
		// Docker lets CAP_SYS_ADMIN stand in for the newer, narrower ones.
		if slices.Contains(caps, c) || (c == "CAP_BPF" || c == "CAP_PERFMON" || c == "CAP_SYSLOG") && slices.Contains(caps, "CAP_SYS_ADMIN") {
			continue
		}
		deny = append(deny, calls...)
	}
	slices.Sort(deny)
	sc := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: known(deny), Action: specs.ActErrno, ErrnoRet: &eperm},
		// AF_VSOCK reaches the host's (or the VM's) vsock services.
		{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpEqualTo}}},
	}}
	if !slices.Contains(caps, "CAP_SYS_ADMIN") {
		sc.Syscalls = append(sc.Syscalls,
			// Rules match in order: clone without namespace flags is let
			// through first, so the second refuses only those with one.
			specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: cloneFlagsArg, Value: nsFlags, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			specs.LinuxSyscall{Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			specs.LinuxSyscall{Names: []string{"unshare"}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: nsFlags | unix.CLONE_NEWTIME, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			specs.LinuxSyscall{Names: []string{"unshare"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			// clone3's flags are behind a pointer seccomp cannot follow:
			// ENOSYS makes libc fall back to clone.
			specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
		)
	}
	return sc
}

// cloneFlagsArg is the index of clone's flags (s390 swaps the first two).
const cloneFlagsArg = 0

// known keeps the calls this architecture has.
func known(names []string) []string {
	info, err := arch.GetInfo("")
	if err != nil {
		return names
	}
	return slices.DeleteFunc(names, func(n string) bool { _, ok := info.SyscallNames[n]; return !ok })
}
