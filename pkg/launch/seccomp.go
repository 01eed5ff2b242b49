package launch

import (
	"fmt"
	"unsafe"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// goRuntime are the calls stage2's own Go code may make on this thread
// between loading a filter and execve (signal return after preemption,
// futex waits, exit on failure). An allow-list filter must permit them or
// the exec itself could be killed; they are allowed for the app too.
var goRuntime = []string{
	"execve", "rt_sigreturn", "rt_sigprocmask", "sigaltstack", "futex", "sched_yield",
	"nanosleep", "getpid", "gettid", "tgkill", "exit", "exit_group",
}

// Compile assembles a seccomp program from the spec (stage0 uses it to
// check a profile before a pod gets it). It is built here
// rather than by go-seccomp-bpf's Policy (whose syscall tables it uses)
// because that one applies the default action to other architectures,
// which would let a 32-bit syscall slip past a deny-list: here a foreign
// architecture is killed and an x32 call fails with ENOSYS.
func Compile(sc *specs.LinuxSeccomp) (Filter, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	def, err := action(sc.DefaultAction, sc.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	rules := sc.Syscalls
	if def != unix.SECCOMP_RET_ALLOW {
		rules = append([]specs.LinuxSyscall{{Names: goRuntime, Action: specs.ActAllow}}, rules...)
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_KILL_PROCESS},
		loadNr,
	}
	if info == arch.X86_64 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: 0x40000000, SkipTrue: 0, SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	for _, r := range rules {
		ret, err := action(r.Action, r.ErrnoRet)
		if err != nil {
			return nil, err
		}
		if len(r.Args) > 0 {
			for _, name := range r.Names {
				nr, ok := info.SyscallNames[name]
				if !ok {
					return nil, fmt.Errorf("seccomp: syscall %q: %w on %s", name, ErrUnsupported, info.Name)
				}
				block, err := argBlock(uint32(nr), r.Args, ret)
				if err != nil {
					return nil, fmt.Errorf("seccomp rule %s: %w", name, err)
				}
				prog = append(prog, block...)
			}
			continue
		}
		// Blocks of at most 200 comparisons keep the jumps within 8 bits:
		// ld nr; jeq nr_i → ret; ...; ja over ret; ret.
		for start := 0; start < len(r.Names); start += 200 {
			names := r.Names[start:min(start+200, len(r.Names))]
			prog = append(prog, loadNr)
			for i, name := range names {
				nr, ok := info.SyscallNames[name]
				if !ok {
					return nil, fmt.Errorf("seccomp: syscall %q: %w on %s", name, ErrUnsupported, info.Name)
				}
				prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(nr), SkipTrue: uint8(len(names) - i)})
			}
			prog = append(prog, bpf.Jump{Skip: 1}, bpf.RetConstant{Val: ret})
		}
	}
	prog = append(prog, bpf.RetConstant{Val: def})
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("seccomp: assemble: %w", err)
	}
	out := make(Filter, len(raw))
	for i, in := range raw {
		out[i] = unix.SockFilter{Code: in.Op, Jt: in.Jt, Jf: in.Jf, K: in.K}
	}
	return out, nil
}

// loadNr loads seccomp_data.nr; every rule block starts with it because an
// argument comparison overwrites the accumulator.
var loadNr = bpf.LoadAbsolute{Off: 0, Size: 4}

// argBlock matches syscall nr when every condition holds (the OCI
// semantics: conditions AND), returning ret, and falls through otherwise:
//
//	ld nr; jne nr → out; (ld arg; [and mask;] jcond value → out)...; ret; out:
//
// Arguments are compared on their low 32 bits, the half the kernel reads
// for an int argument (socket's domain) and the half that holds every
// clone/unshare flag: comparing all 64 bits would let garbage in the upper
// half of an int argument slip past a deny rule. A value that needs the
// upper half is refused rather than half-checked.
func argBlock(nr uint32, args []specs.LinuxSeccompArg, ret uint32) ([]bpf.Instruction, error) {
	var body []bpf.Instruction
	// Each entry: index in body of a jump whose "fail" edge leaves the block.
	var exits []int
	for _, a := range args {
		if a.Index > 5 {
			return nil, fmt.Errorf("%w: argument index %d", ErrUnsupported, a.Index)
		}
		if a.Value > 0xffffffff || a.ValueTwo > 0xffffffff {
			return nil, fmt.Errorf("%w: argument value above 32 bits", ErrUnsupported)
		}
		body = append(body, bpf.LoadAbsolute{Off: 16 + 8*uint32(a.Index), Size: 4}) // low half on little-endian
		val := uint32(a.Value)
		cond := bpf.JumpNotEqual // fail when the argument differs
		switch a.Op {
		case specs.OpEqualTo:
		case specs.OpNotEqual:
			cond = bpf.JumpEqual
		case specs.OpMaskedEqual:
			body = append(body, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: uint32(a.Value)})
			val = uint32(a.ValueTwo)
		default:
			return nil, fmt.Errorf("%w: argument operator %s", ErrUnsupported, a.Op)
		}
		exits = append(exits, len(body))
		body = append(body, bpf.JumpIf{Cond: cond, Val: val})
	}
	body = append(body, bpf.RetConstant{Val: ret})
	if len(body) > 250 {
		return nil, fmt.Errorf("%w: too many argument conditions", ErrUnsupported)
	}
	for _, i := range exits {
		j := body[i].(bpf.JumpIf)
		j.SkipTrue = uint8(len(body) - i - 1)
		body[i] = j
	}
	return append([]bpf.Instruction{loadNr,
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: nr, SkipTrue: uint8(len(body))}}, body...), nil
}

func action(a specs.LinuxSeccompAction, errno *uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActErrno:
		e := uint32(unix.EPERM)
		if errno != nil {
			e = uint32(*errno) & unix.SECCOMP_RET_DATA
		}
		return unix.SECCOMP_RET_ERRNO | e, nil
	}
	return 0, fmt.Errorf("seccomp action %q: %w", a, ErrUnsupported)
}

// LoadFilters installs filters, the first first, on the calling thread
// (lock it, and exec from it). The caller has set no_new_privs or holds
// CAP_SYS_ADMIN.
func LoadFilters(filters []Filter) error {
	for _, f := range filters {
		if err := loadFilter(f); err != nil {
			return err
		}
	}
	return nil
}

// loadFilter installs the program on the calling thread. The caller has
// set no_new_privs or holds CAP_SYS_ADMIN.
func loadFilter(f Filter) error {
	prog := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog))); e != 0 {
		return fmt.Errorf("load seccomp filter: %w", e)
	}
	return nil
}
