package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/vm/agent"
)

func mountEarly() error {
	for _, m := range []struct{ fstype, dir string }{
		{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"},
	} {
		if err := unix.Mount(m.fstype, m.dir, m.fstype, unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dir, err)
		}
	}
	return nil
}

// loadModules loads each module named in the list file, in order.
func loadModules(list string) error {
	f, err := os.Open(list)
	if err != nil {
		return fmt.Errorf("load modules: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if err := loadModule(sc.Text()); err != nil {
			return err
		}
	}
	return sc.Err()
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("load module: %w", err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", path, err)
	}
	return nil
}

// retry runs fn until it succeeds or 2 s pass: virtio devices are probed
// asynchronously after their driver loads.
func retry(fn func() error) error {
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mountShare(tag, dir string) error {
	// cache=mmap: journald and systemd need shared writable mmap. (With
	// cache=loose, journald's file allocation, one-byte writes a page
	// apart, was twice as slow: each page is read before it is written.)
	opts := "trans=virtio,version=9p2000.L,cache=mmap,msize=512000"
	err := retry(func() error { return unix.Mount(tag, dir, "9p", 0, opts) })
	if err != nil {
		return fmt.Errorf("mount 9p share %q: %w", tag, err)
	}
	return nil
}

// bindSysroot binds, read-only, each path the list file names from the
// sysroot directory over the same path in root: the image builder put a
// copy of the system's read-only parts into the initramfs. Without a list
// there is nothing to bind.
func bindSysroot(list, sysroot, root string) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("bind sysroot: %w", err)
	}
	for _, p := range strings.Fields(string(b)) {
		src, dst := filepath.Join(sysroot, p), filepath.Join(root, p)
		if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind sysroot %s: %w", p, err)
		}
		if err := unix.Mount("", dst, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("bind sysroot %s read-only: %w", p, err)
		}
	}
	return nil
}

// journalFlushed is journald's flag (podunit.JournalFlushed) that the
// runtime journal was flushed: set from the start, journald writes to
// /var/log/journal, in the pod tree, at once.
const journalFlushed = "/run/systemd/journal/flushed"

// mountRun mounts root's /run as systemd would (systemd leaves a /run that
// is mounted alone) and sets journald's flushed flag in it. Setting it here
// spares journald's start a process (a hook) on the way to the first
// log line, which a short-lived pod waits for at its poweroff.
func mountRun(root string) error {
	run := filepath.Join(root, "run")
	if err := unix.Mount("tmpfs", run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=0755,size=20%,nr_inodes=800k"); err != nil {
		return fmt.Errorf("mount %s: %w", run, err)
	}
	flag := filepath.Join(root, journalFlushed)
	if err := os.MkdirAll(filepath.Dir(flag), 0o755); err != nil {
		return fmt.Errorf("set journal flag: %w", err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		return fmt.Errorf("set journal flag: %w", err)
	}
	return skipBootLog(filepath.Join(root, kernelSeqnum))
}

// kernelSeqnum is where journald keeps the sequence number of the next
// kernel message it is to copy from /dev/kmsg into the journal (so that a
// journald restarted copies none twice); it skips those before.
const kernelSeqnum = "/run/systemd/journal/kernel-seqnum"

// skipBootLog makes journald start with the kernel messages that come
// after the guest's boot: the ~300 of the boot itself (all quiet on the
// console; --debug shows them there) are not the pod's, and journald
// copied them into the pod's journal over 9p before it took the first
// line of an app, a second and more under emulation. Later kernel
// messages (an OOM kill, an app's segfault) reach the journal as before.
func skipBootLog(seqnum string) error {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("skip boot log: %w", err)
	}
	defer unix.Close(fd)
	var next uint64
	buf := make([]byte, 8192) // a record is at most 1 KiB of text plus its dictionary
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EPIPE {
			continue // overwritten while read: the next read goes on
		}
		if err == unix.EAGAIN {
			break
		}
		if err != nil {
			return fmt.Errorf("skip boot log: %w", err)
		}
		if seq, ok := kmsgSeq(buf[:n]); ok {
			next = seq + 1
		}
	}
	if err := os.WriteFile(seqnum, binary.NativeEndian.AppendUint64(nil, next), 0o644); err != nil {
		return fmt.Errorf("skip boot log: %w", err)
	}
	return nil
}

// kmsgSeq returns the sequence number of a /dev/kmsg record,
// "PRIORITY,SEQ,USEC,FLAGS;MESSAGE".
func kmsgSeq(rec []byte) (uint64, bool) {
	f := strings.SplitN(string(rec), ",", 3)
	if len(f) < 3 {
		return 0, false
	}
	n, err := strconv.ParseUint(f[1], 10, 64)
	return n, err == nil
}

// attachDir is podunit.AttachDir, where stage2's attach relays listen
// (the init links no pod package; a test checks they agree).
const attachDir = "/skiff/attach"

// mountAttach mounts a tmpfs on root's attach directory: a relay's unix
// socket is the guest's alone (the agent connects to it for the host),
// and one on the 9p share would be a file the host sees and none it can
// connect to.
func mountAttach(root string) error {
	dir := filepath.Join(root, attachDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0700,size=1m"); err != nil {
		return fmt.Errorf("mount %s: %w", dir, err)
	}
	return nil
}

// openPort finds the agent's virtio-serial port by name; without udev there
// is no /dev/virtio-ports/ symlink.
func openPort() (*os.File, error) {
	var port *os.File
	err := retry(func() error {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil || strings.TrimSpace(string(b)) != agent.PortName {
				continue
			}
			f, err := os.OpenFile("/dev/"+filepath.Base(filepath.Dir(n)), os.O_RDWR, 0)
			if err != nil {
				return err
			}
			port = f
			return nil
		}
		return os.ErrNotExist
	})
	if err != nil {
		return nil, fmt.Errorf("open virtio port %s: %w", agent.PortName, err)
	}
	return port, nil
}

// switchRoot makes dir the root, carrying /dev, /proc and /sys along when
// the new root has places for them.
func switchRoot(dir string) error {
	for _, m := range []string{"/dev", "/proc", "/sys"} {
		if fi, err := os.Stat(dir + m); err == nil && fi.IsDir() {
			if err := unix.Mount(m, dir+m, "", unix.MS_MOVE, ""); err != nil {
				return fmt.Errorf("switch root: move %s: %w", m, err)
			}
		}
	}
	if err := unix.Chdir(dir); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("switch root: move to /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch root: %w", err)
	}
	return unix.Chdir("/")
}
