// Package seccompcopy copies a process's seccomp filters: it reads them
// from a process stopped under ptrace (PTRACE_SECCOMP_GET_FILTER, as CRIU
// does), stores them in a small file, and installs them again in the
// calling thread. stage1-ns uses it to give a pod exactly the filter
// systemd-nspawn would compile for it without nspawn compiling it on every
// start (docs/stage1-ns.md, "nspawn's filter, learned once").
package seccompcopy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Filter is one seccomp filter program with the flags it was loaded with.
type Filter struct {
	Flags uint64 // SECCOMP_FILTER_FLAG_LOG or 0: what the kernel reports
	Prog  []unix.SockFilter
}

const (
	ptraceGetFilter   = 0x420c // PTRACE_SECCOMP_GET_FILTER
	ptraceGetMetadata = 0x420d // PTRACE_SECCOMP_GET_METADATA
	// maxFilters and maxInsns bound what a file may claim: the kernel allows
	// 32768 instructions in all of a thread's filters together.
	maxFilters = 64
	maxInsns   = 32768
)

// Read returns the seccomp filters of thread pid, the first installed
// first (the kernel's order of indexes). It attaches with PTRACE_SEIZE, stops the thread with
// PTRACE_INTERRUPT (no signal is sent; an interrupted system call is
// restarted or returns EINTR) and detaches. The caller needs
// CAP_SYS_ADMIN and must not itself run under seccomp.
func Read(pid int) ([]Filter, error) {
	runtime.LockOSThread() // every ptrace request must come from the tracer thread
	defer runtime.UnlockOSThread()
	if err := ptrace(unix.PTRACE_SEIZE, pid, 0, 0); err != nil {
		return nil, fmt.Errorf("read seccomp filters of %d: attach: %w", pid, err)
	}
	defer ptrace(unix.PTRACE_DETACH, pid, 0, 0)
	if err := ptrace(unix.PTRACE_INTERRUPT, pid, 0, 0); err != nil {
		return nil, fmt.Errorf("read seccomp filters of %d: interrupt: %w", pid, err)
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read seccomp filters of %d: wait: %w", pid, err)
		}
		break
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("read seccomp filters of %d: it exited", pid)
	}
	var fs []Filter
	for i := 0; ; i++ {
		if i == maxFilters {
			return nil, fmt.Errorf("read seccomp filters of %d: more than %d", pid, maxFilters)
		}
		n, err := ptraceRet(ptraceGetFilter, pid, uintptr(i), 0)
		if err == unix.ENOENT {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read seccomp filter %d of %d: %w", i, pid, err)
		}
		prog := make([]unix.SockFilter, n)
		if n > 0 {
			if _, err := ptraceRet(ptraceGetFilter, pid, uintptr(i), uintptr(unsafe.Pointer(&prog[0]))); err != nil {
				return nil, fmt.Errorf("read seccomp filter %d of %d: %w", i, pid, err)
			}
		}
		md := struct{ Off, Flags uint64 }{Off: uint64(i)}
		if _, err := ptraceRet(ptraceGetMetadata, pid, unsafe.Sizeof(md), uintptr(unsafe.Pointer(&md))); err != nil {
			return nil, fmt.Errorf("read seccomp filter %d of %d: flags: %w", i, pid, err)
		}
		fs = append(fs, Filter{Flags: md.Flags, Prog: prog}) // index 0 is the first installed
	}
	return fs, nil
}

func ptrace(req, pid int, addr, data uintptr) error {
	_, err := ptraceRet(req, pid, addr, data)
	return err
}

func ptraceRet(req, pid int, addr, data uintptr) (uintptr, error) {
	r, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
	if e != 0 {
		return 0, e
	}
	return r, nil
}

// magic starts a file of filters; the format is little-endian: magic,
// count, then per filter its flags (u64), length (u32) and instructions
// (code u16, jt u8, jf u8, k u32).
var magic = []byte("skiff-seccomp-1\n")

// Marshal encodes fs for Unmarshal.
func Marshal(fs []Filter) []byte {
	var b bytes.Buffer
	b.Write(magic)
	binary.Write(&b, binary.LittleEndian, uint32(len(fs)))
	for _, f := range fs {
		binary.Write(&b, binary.LittleEndian, f.Flags)
		binary.Write(&b, binary.LittleEndian, uint32(len(f.Prog)))
		binary.Write(&b, binary.LittleEndian, f.Prog)
	}
	return b.Bytes()
}

// Unmarshal decodes what Marshal wrote, refusing anything else.
func Unmarshal(b []byte) ([]Filter, error) {
	if !bytes.HasPrefix(b, magic) {
		return nil, errors.New("seccomp filters: not a filter file")
	}
	r := bytes.NewReader(b[len(magic):])
	var n uint32
	if err := binary.Read(r, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("seccomp filters: %w", err)
	}
	if n == 0 || n > maxFilters {
		return nil, fmt.Errorf("seccomp filters: %d filters", n)
	}
	fs := make([]Filter, n)
	total := 0
	for i := range fs {
		var l uint32
		if err := errors.Join(binary.Read(r, binary.LittleEndian, &fs[i].Flags), binary.Read(r, binary.LittleEndian, &l)); err != nil {
			return nil, fmt.Errorf("seccomp filters: filter %d: %w", i, err)
		}
		if total += int(l); l == 0 || total > maxInsns {
			return nil, fmt.Errorf("seccomp filters: filter %d: %d instructions", i, l)
		}
		fs[i].Prog = make([]unix.SockFilter, l)
		if err := binary.Read(r, binary.LittleEndian, fs[i].Prog); err != nil {
			return nil, fmt.Errorf("seccomp filters: filter %d: %w", i, err)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return nil, errors.New("seccomp filters: trailing bytes")
	}
	return fs, nil
}

// Install loads fs, the first first, into the calling thread and (TSYNC)
// every other thread of the process, without setting no_new_privs: the
// caller needs CAP_SYS_ADMIN in its user namespace. Call it right before
// an exec, with the thread locked (runtime.LockOSThread).
func Install(fs []Filter) error {
	for i, f := range fs {
		prog := unix.SockFprog{Len: uint16(len(f.Prog)), Filter: &f.Prog[0]}
		flags := f.Flags | unix.SECCOMP_FILTER_FLAG_TSYNC
		if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(flags), uintptr(unsafe.Pointer(&prog))); e != 0 {
			return fmt.Errorf("install seccomp filter %d of %d: %w", i+1, len(fs), e)
		}
	}
	return nil
}
