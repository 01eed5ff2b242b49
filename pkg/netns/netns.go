// Package netns provides a pod's network namespace as a file: created by
// unshare and kept alive by a bind mount of its nsfs inode at a path the
// caller chooses (e.g. /run/skiff/netns/<uuid>), entered to run a function on
// a locked OS thread, and removed by unmounting and unlinking that path.
//
// A namespace kept by a file outlives every process in it, so CNI can attach
// it before the pod starts and detach it after the pod is gone.
package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Create makes a new network namespace with its loopback up and binds it to
// path. path must not exist: an existing file, symlink or mount is refused
// with an error wrapping fs.ErrExist and left as it was. The parent
// directory is created (0755) if missing.
func Create(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	// O_EXCL|O_NOFOLLOW: never reuse or follow whatever is already there.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread ends up in the new namespace; it is never unlocked, so
		// the runtime discards it when the goroutine returns.
		runtime.LockOSThread()
		errc <- bindNew(path)
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return fmt.Errorf("create netns %s: %w", path, err)
	}
	return nil
}

func bindNew(path string) error {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("unshare: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
	if err := unix.Mount(self, path, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	return nil
}

// New makes a new network namespace with its loopback up, kept alive only
// by the returned file (and whatever joins it): closing it and ending the
// processes in it ends the namespace, so nothing needs removing.
func New() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	c := make(chan result, 1)
	go func() {
		// As in Create: this thread is never unlocked and dies with the goroutine.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			c <- result{err: fmt.Errorf("new netns: unshare: %w", err)}
			return
		}
		if err := loopbackUp(); err != nil {
			c <- result{err: fmt.Errorf("new netns: %w", err)}
			return
		}
		f, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			err = fmt.Errorf("new netns: %w", err)
		}
		c <- result{f, err}
	}()
	r := <-c
	return r.f, r.err
}

// loopbackUp sets IFF_UP on lo in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	return nil
}

// Do runs fn on an OS thread that has joined the network namespace at path,
// then returns the thread to the caller's namespace. Sockets fn opens stay in
// the pod's namespace. path must be a network namespace file (nsfs).
func Do(path string, fn func() error) error {
	target, err := open(path)
	if err != nil {
		return fmt.Errorf("enter netns %s: %w", path, err)
	}
	defer target.Close()
	return DoFile(target, fn)
}

// DoFile is Do in the network namespace of the open file target.
func DoFile(target *os.File, fn func() error) error {
	path := target.Name()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		defer home.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter netns %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			// The thread stays locked and dies with this goroutine rather
			// than run other goroutines in the pod's namespace.
			errc <- errors.Join(ferr, fmt.Errorf("leave netns %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Check returns nil if path is a network namespace file (ErrNotNetns or the
// open error otherwise).
func Check(path string) error {
	f, err := open(path)
	if err != nil {
		return err
	}
	return f.Close()
}

// Open opens the network namespace file at path (ErrNotNetns if it is
// not one), for DoFile or to name the namespace to netlink.
func Open(path string) (*os.File, error) { return open(path) }

// open opens path and checks that it is a network namespace.
func open(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, ErrNotNetns
	}
	// NS_GET_NSTYPE tells a network namespace from the other kinds.
	typ, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || typ != unix.CLONE_NEWNET {
		f.Close()
		return nil, ErrNotNetns
	}
	return f, nil
}

// Remove unmounts and unlinks the namespace file at path. A path that does
// not exist is not an error, so Remove can be repeated. Anything at path
// that is not a namespace file or an unmounted placeholder Create left
// (a directory, a symlink, a non-empty file) is refused and left alone.
func Remove(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("remove netns %s: %w", path, ErrNotNetns)
	}
	if Check(path) == nil {
		if err := unix.Unmount(path, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
			return fmt.Errorf("remove netns %s: %w", path, err)
		}
	}
	// After the unmount, what is left must be Create's empty placeholder.
	if fi, err = os.Lstat(path); err == nil && (!fi.Mode().IsRegular() || fi.Size() != 0) {
		return fmt.Errorf("remove netns %s: %w", path, ErrNotNetns)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}
