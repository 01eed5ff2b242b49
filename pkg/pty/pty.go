// Package pty allocates pseudo-terminals and runs a command on one: the
// terminal mode of skiff enter (enter --tty) and of the CRI server's
// exec with a TTY. The slave is opened from the master (TIOCGPTPEER), so
// no path under /dev/pts is looked up.
package pty

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// Open allocates a pseudo-terminal in the devpts of ptmx (usually
// /dev/ptmx) and returns its master and its slave.
func Open(ptmx string) (master, slave *os.File, err error) {
	fd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("unlock pty: %w", err)
	}
	// TIOCGPTPEER's argument is the slave's open flags.
	r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("open pty slave: %w", errno)
	}
	sfd := int(r)
	// Non-blocking, so that the master is pollable (read deadlines).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		unix.Close(sfd)
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	return os.NewFile(uintptr(fd), "pty"), os.NewFile(uintptr(sfd), "pty-slave"), nil
}

// Size is a terminal's size in characters.
type Size struct{ Rows, Cols uint16 }

// SetSize sets the size of the terminal f: the kernel sends SIGWINCH to
// its foreground process group when it changes.
func SetSize(f *os.File, s Size) error {
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: s.Rows, Col: s.Cols}); err != nil {
		return fmt.Errorf("set terminal size: %w", err)
	}
	return nil
}

// GetSize returns the size of the terminal f.
func GetSize(f *os.File) (Size, error) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return Size{}, fmt.Errorf("get terminal size: %w", err)
	}
	return Size{ws.Row, ws.Col}, nil
}

// drainTime bounds how long Run reads what the command left on the
// terminal after it ended, when a process it started still holds the
// terminal open (the master reads EIO once no process does).
const drainTime = 2 * time.Second

// Run starts c on a new pseudo-terminal of ptmx, as the session leader
// with the terminal as its controlling one and its stdin, stdout and
// stderr; copies in to the terminal and the terminal's output to out;
// applies every size from resize (until it is closed); and returns once c
// has ended and its output is copied, with c.Wait's error. size, when
// not zero, is the terminal's size from the start. The end of in is not
// passed on (a terminal has none); c's end ends the session.
func Run(c *exec.Cmd, ptmx string, in io.Reader, out io.Writer, size Size, resize <-chan Size) error {
	if out == nil {
		out = io.Discard
	}
	master, slave, err := Open(ptmx)
	if err != nil {
		return err
	}
	defer master.Close()
	if size != (Size{}) {
		if err := SetSize(master, size); err != nil {
			slave.Close()
			return err
		}
	}
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	if c.SysProcAttr == nil {
		c.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A session of its own is a process group of its own too (setpgid
	// would fail on the session leader).
	c.SysProcAttr.Setsid, c.SysProcAttr.Setctty, c.SysProcAttr.Ctty = true, true, 0
	c.SysProcAttr.Setpgid = false
	err = c.Start()
	slave.Close()
	if err != nil {
		return err
	}
	if in != nil {
		go io.Copy(master, in)
	}
	var wg sync.WaitGroup
	if resize != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case s, ok := <-resize:
					if !ok {
						return
					}
					SetSize(master, s)
				case <-stop:
					return
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		io.Copy(out, master) // ends with EIO once no process holds the slave
	}()
	err = c.Wait()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(drainTime):
		master.SetReadDeadline(time.Now())
		<-done
	}
	return err
}

// RunOnCaller runs c on a new pseudo-terminal of ptmx (Run) for the
// calling process: its stdin and stdout are copied, and when its stdin is
// a terminal that terminal is in raw mode meanwhile (the keys are the
// command's, ^C included) and its size is the new terminal's (Caller).
func RunOnCaller(c *exec.Cmd, ptmx string) error {
	size, resize, restore := Caller()
	defer restore()
	return Run(c, ptmx, os.Stdin, os.Stdout, size, resize)
}

// Caller puts the calling process's terminal, when its stdin is one, in
// raw mode and returns its size and a channel of its sizes on every
// SIGWINCH; restore puts it back and stops the channel. With no
// terminal, the size is zero and the channel nil.
func Caller() (size Size, resize <-chan Size, restore func()) {
	in := os.Stdin
	if !term.IsTerminal(int(in.Fd())) {
		return Size{}, nil, func() {}
	}
	var undo []func()
	if st, err := term.MakeRaw(int(in.Fd())); err == nil {
		undo = append(undo, func() { term.Restore(int(in.Fd()), st) })
	}
	size, _ = GetSize(in)
	ch := make(chan Size, 1)
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	stop := make(chan struct{})
	undo = append(undo, func() { signal.Stop(winch); close(stop) })
	go func() {
		for {
			select {
			case <-winch:
				if s, err := GetSize(in); err == nil {
					select {
					case ch <- s:
					default:
					}
				}
			case <-stop:
				return
			}
		}
	}()
	return size, ch, func() {
		for _, f := range undo {
			f()
		}
	}
}
