package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxStacked bounds how many mounts RemoveAll detaches from one path
// before giving up: mounts can be stacked on one point, but not forever.
const maxStacked = 16

// beneath resolves a name below a directory handle: never through a
// symlink, never out of the directory.
const beneath = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS

// RemoveAll deletes dir and everything below it, and never deletes
// through a mount: each mount point it meets (a directory openat2 will
// not enter with RESOLVE_NO_XDEV, a file unlinkat calls busy) is
// detached first, through a handle opened beneath its parent without
// following symlinks, and the walk goes on in what was underneath. So it
// reads no mount table, which costs a pod's removal more than the rest
// of it on a host with many mounts (/proc/self/mountinfo is re-generated
// and parsed whole). A missing dir is no error. On a kernel without
// openat2 it falls back to UnmountAll and os.RemoveAll.
func RemoveAll(dir string) error {
	parent, err := unix.Open(filepath.Dir(dir), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	defer unix.Close(parent)
	err = removeAt(parent, filepath.Base(dir), dir)
	if errors.Is(err, unix.ENOSYS) {
		if err := UnmountAll(dir); err != nil {
			return err
		}
		return os.RemoveAll(dir)
	}
	return err
}

// removeAt removes name, below the directory handle dfd; path names it in
// errors.
func removeAt(dfd int, name, path string) error {
	for try := 0; ; try++ {
		err := unix.Unlinkat(dfd, name, 0)
		switch {
		case err == nil || errors.Is(err, unix.ENOENT):
			return nil
		case errors.Is(err, unix.EBUSY) && try < maxStacked: // a file mount point
			if err := detach(dfd, name, path); err != nil {
				return err
			}
			continue
		case !errors.Is(err, unix.EISDIR):
			return &os.PathError{Op: "remove", Path: path, Err: err}
		}
		break
	}
	var fd int
	for try := 0; ; try++ {
		var err error
		fd, err = unix.Openat2(dfd, name, &unix.OpenHow{
			Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
			Resolve: beneath | unix.RESOLVE_NO_XDEV,
		})
		if errors.Is(err, unix.EXDEV) && try < maxStacked { // a mount point
			if err := detach(dfd, name, path); err != nil {
				return err
			}
			continue
		}
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return &os.PathError{Op: "open", Path: path, Err: err}
		}
		break
	}
	err := removeChildren(fd, path)
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: path, Err: err}
	}
	return nil
}

// removeChildren removes everything in the directory fd.
func removeChildren(fd int, path string) error {
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return &os.PathError{Op: "readdir", Path: path, Err: err}
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	for _, n := range names {
		if err := removeAt(fd, n, path+"/"+n); err != nil {
			return err
		}
	}
	return nil
}

// detach lazily unmounts the mount on name below dfd, and every mount
// below it, reaching it through a handle that followed no symlink.
func detach(dfd int, name, path string) error {
	fd, err := unix.Openat2(dfd, name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC, Resolve: beneath})
	if err != nil {
		return &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Unmount("/proc/self/fd/"+strconv.Itoa(fd), unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	return nil
}

// MkdirAllBeneath makes directory rel below root, as os.MkdirAll would,
// and returns an O_PATH handle on it; no component may be a symlink (a
// pod's tree, which a KVM guest writes while it runs, may hold them), so
// what the handle names is below root whatever is swapped in later:
// mount onto, and write below, "/proc/self/fd/N" (FDPath).
func MkdirAllBeneath(root, rel string) (*os.File, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	for _, c := range strings.Split(filepath.Clean(rel), "/") {
		if c == "" || c == "." {
			continue
		}
		if err := unix.Mkdirat(fd, c, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
			unix.Close(fd)
			return nil, fmt.Errorf("mkdir %s: %w", filepath.Join(root, rel), err)
		}
		next, err := unix.Openat2(fd, c, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.ENOTDIR) {
			return nil, fmt.Errorf("open %s: %q is not a directory of its own (a symlink?): refused", filepath.Join(root, rel), c)
		}
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", filepath.Join(root, rel), err)
		}
		fd = next
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, rel)), nil
}

// FDPath is the path that names what handle f names.
func FDPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// RemoveAllBeneath is RemoveAll of rel below root, where no component of
// rel may be a symlink: it never deletes anything outside root.
func RemoveAllBeneath(root, rel string) error {
	rootfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(root, rel), err)
	}
	defer unix.Close(rootfd)
	parent, err := unix.Openat2(rootfd, filepath.Dir(filepath.Clean(rel)), &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: beneath})
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(root, rel), err)
	}
	defer unix.Close(parent)
	return removeAt(parent, filepath.Base(rel), filepath.Join(root, rel))
}
