package launch

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Filter is one seccomp program as the kernel keeps it.
type Filter []unix.SockFilter

// attachTimeout bounds the wait for another tracer (a concurrent enter)
// to let go of the process.
const attachTimeout = 2 * time.Second

// maxFilterLen is the kernel's BPF_MAXINSNS.
const maxFilterLen = 4096

// Filters returns the seccomp filters process pid holds, oldest first, so
// that loading them in order rebuilds the same stack. Enter uses it on the
// pod's init: what every app inherited from its stage1 (systemd-nspawn's
// filters), which no app can change. A process with none returns none. It
// reads them with ptrace(PTRACE_SECCOMP_GET_FILTER), which briefly stops
// the process and needs CAP_SYS_ADMIN and a kernel with
// CONFIG_CHECKPOINT_RESTORE.
func Filters(pid int) ([]Filter, error) {
	mode, err := seccompMode(pid)
	if err != nil || mode == 0 {
		return nil, err
	}
	if mode != 2 {
		return nil, fmt.Errorf("read seccomp filters of %d: %w: strict mode", pid, ErrUnsupported)
	}
	// ptrace requests must come from the thread that attached.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Another enter may be reading the same process: one tracer at a time.
	for deadline := time.Now().Add(attachTimeout); ; {
		err := unix.PtraceSeize(pid)
		if err == nil {
			break
		}
		if err != unix.EPERM || time.Now().After(deadline) {
			return nil, fmt.Errorf("read seccomp filters of %d: attach: %w", pid, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	sig := 0 // a signal that arrived meanwhile, delivered on detach
	defer func() { unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(pid), 0, uintptr(sig), 0, 0) }()
	if err := unix.PtraceInterrupt(pid); err != nil {
		return nil, fmt.Errorf("read seccomp filters of %d: interrupt: %w", pid, err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WALL, nil); err != nil {
		return nil, fmt.Errorf("read seccomp filters of %d: wait: %w", pid, err)
	}
	if !ws.Stopped() {
		return nil, fmt.Errorf("read seccomp filters of %d: %w: process ended", pid, ErrUnsupported)
	}
	if s := ws.StopSignal(); s != unix.SIGTRAP {
		sig = int(s)
	}
	var out []Filter
	for i := 0; ; i++ {
		n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), uintptr(i), 0, 0, 0)
		if e == unix.ENOENT {
			break
		}
		if e != 0 || n == 0 || n > maxFilterLen {
			return nil, fmt.Errorf("read seccomp filter %d of %d: %w", i, pid, e)
		}
		f := make(Filter, n)
		if _, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(pid), uintptr(i), uintptr(unsafe.Pointer(&f[0])), 0, 0); e != 0 {
			return nil, fmt.Errorf("read seccomp filter %d of %d: %w", i, pid, e)
		}
		out = append(out, f) // index 0 is the oldest
	}
	return out, nil
}

// seccompMode reads the Seccomp: line of /proc/PID/status.
func seccompMode(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read seccomp mode: %w", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "Seccomp:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, nil // a kernel without seccomp
}

// WriteFilters encodes filters for ReadFilters: per filter its length as a
// little-endian uint32, then struct sock_filter entries.
func WriteFilters(w io.Writer, filters []Filter) error {
	bw := bufio.NewWriter(w)
	for _, f := range filters {
		binary.Write(bw, binary.LittleEndian, uint32(len(f)))
		binary.Write(bw, binary.LittleEndian, []unix.SockFilter(f))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write seccomp filters: %w", err)
	}
	return nil
}

// ReadFilters decodes what WriteFilters wrote.
func ReadFilters(r io.Reader) ([]Filter, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read seccomp filters: %w", err)
	}
	br := bytes.NewReader(b)
	var out []Filter
	for br.Len() > 0 {
		var n uint32
		if err := binary.Read(br, binary.LittleEndian, &n); err != nil {
			return nil, fmt.Errorf("read seccomp filters: %w", err)
		}
		if n == 0 || n > maxFilterLen {
			return nil, fmt.Errorf("read seccomp filters: %w: filter of %d instructions", ErrUnsupported, n)
		}
		f := make(Filter, n)
		if err := binary.Read(br, binary.LittleEndian, []unix.SockFilter(f)); err != nil {
			return nil, fmt.Errorf("read seccomp filters: %w", errors.Join(err, io.ErrUnexpectedEOF))
		}
		out = append(out, f)
	}
	return out, nil
}
