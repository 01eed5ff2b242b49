package main

import (
	"fmt"
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// trySyscalls makes each call a default seccomp profile refuses and
// prints TRY_<NAME>=ok or the errno's name, undoing what succeeded.
func trySyscalls(w io.Writer) error {
	desc := []byte("probe")
	tries := []struct {
		name string
		call func() error
	}{
		// In a child: unshare(CLONE_NEWUSER) would change this process.
		{"USERNS", func() error { return inChild(unix.CLONE_NEWUSER) }},
		{"KEYCTL", func() error {
			_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
			return err
		}},
		{"ADD_KEY", func() error {
			_, err := unix.AddKey("user", "probe", desc, unix.KEY_SPEC_PROCESS_KEYRING)
			return err
		}},
		{"VSOCK", func() error {
			fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
			if err == nil {
				unix.Close(fd)
			}
			return err
		}},
		// Nothing to mount on: ENOENT where mount is allowed.
		{"MOUNT", func() error { return unix.Mount("/", "/nonexistent-probe-target", "", unix.MS_BIND, "") }},
	}
	for _, t := range tries {
		v := "ok"
		if err := t.call(); err != nil {
			v = errName(err)
		}
		if _, err := fmt.Fprintf(w, "TRY_%s=%s\n", t.name, v); err != nil {
			return err
		}
	}
	return nil
}

// inChild forks a child that calls unshare(flags) and exits with its errno:
// a user namespace needs a single-threaded caller, which a Go program never
// is, and it would change this process.
func inChild(flags int) error {
	pid, e := forkDo(unix.SYS_UNSHARE, uintptr(flags))
	if e != 0 {
		return e
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return err
	}
	if ws.ExitStatus() != 0 {
		return syscall.Errno(ws.ExitStatus())
	}
	return nil
}

func errName(err error) string {
	if e, ok := err.(syscall.Errno); ok {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	return err.Error()
}

// forkBomb forks up to n children that only wait, until fork fails, and
// prints FORK_COUNT= (children made) and FORK_ERR= (the errno that
// stopped it, or none); then it kills them. The children are raw forks of
// this thread, not Go programs, so each costs one task and little memory.
func forkBomb(w io.Writer, n int) error {
	var pids []int
	stop := "none"
	for len(pids) < n {
		pid, e := forkPause()
		if e != 0 {
			stop = errName(e)
			break
		}
		pids = append(pids, pid)
	}
	for _, p := range pids {
		unix.Kill(p, unix.SIGKILL)
	}
	for _, p := range pids {
		var ws unix.WaitStatus
		unix.Wait4(p, &ws, 0, nil)
	}
	_, err := fmt.Fprintf(w, "FORK_COUNT=%d\nFORK_ERR=%s\n", len(pids), stop)
	return err
}

// forkPause forks; the child blocks in ppoll until killed.
func forkPause() (int, syscall.Errno) { return forkDo(syscall.SYS_PPOLL, 0) }

// forkDo forks; the child makes system call nr(arg) and exits with its
// errno, or, for ppoll, blocks until killed. The child runs no Go code
// beyond raw system calls: it holds a copy of one thread of a
// multi-threaded runtime.
//
//go:nosplit
func forkDo(nr, arg uintptr) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	if r == 0 {
		for {
			_, _, e := syscall.RawSyscall6(nr, arg, 0, 0, 0, 0, 0)
			if nr != syscall.SYS_PPOLL {
				syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(e), 0, 0)
			}
		}
	}
	return int(r), 0
}
