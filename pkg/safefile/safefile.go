// Package safefile reads and writes files that someone else may have
// planted: files a pod or an image wrote and skiff reads on the host, and
// output files skiff writes for the user. A read never follows a symlink
// where none is expected, never blocks on a FIFO, refuses anything but a
// regular file and bounds the bytes read; a write never follows a symlink
// and never opens a FIFO or device.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"
)

// readFlags open for reading without following a final symlink and without
// waiting for a FIFO's writer.
const readFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC

// ReadFile reads the regular file at path, at most limit bytes. The final
// component must not be a symlink. Use ReadFileAt when a trusted directory
// holds the file, so that no component below it is followed either.
func ReadFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, readFlags, 0)
	if err != nil {
		return nil, openError(path, err)
	}
	return readFD(fd, path, limit)
}

// ReadFileAt reads name, a path relative to the trusted directory dir,
// following no symlink at or below dir and never leaving it (openat2
// RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH). dir itself may be reached through
// symlinks: it is the caller's, not the pod's.
func ReadFileAt(dir, name string, limit int64) ([]byte, error) {
	d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(d)
	return ReadFileFD(d, dir, name, limit)
}

// ReadFileFD is ReadFileAt for a directory the caller holds open (an
// O_PATH descriptor will do): one file of many read below the same
// directory costs no lookup of the directory itself. dir names it in
// errors only.
func ReadFileFD(dirfd int, dir, name string, limit int64) ([]byte, error) {
	fd, err := OpenBeneath(dirfd, name, readFlags)
	path := dir + "/" + name
	if err != nil {
		return nil, openError(path, err)
	}
	return readFD(fd, path, limit)
}

// OpenBeneath opens name below the directory dirfd with flags, following
// no symlink and never leaving it (openat2 RESOLVE_NO_SYMLINKS|
// RESOLVE_BENEATH); on kernels before 5.6 only the final component is
// checked (the caller's flags should hold O_NOFOLLOW).
func OpenBeneath(dirfd int, name string, flags int) (int, error) {
	fd, err := unix.Openat2(dirfd, name, &unix.OpenHow{
		Flags:   uint64(flags),
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) {
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	return fd, err
}

// ReadFileIn reads name inside root, at most limit bytes. Symlinks are
// resolved as os.Root does, never leaving root: inside an image they are
// data like any other, and may legitimately point elsewhere in it.
func ReadFileIn(root *os.Root, name string, limit int64) ([]byte, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readFile(f, limit)
}

func openError(path string, err error) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
		return &fs.PathError{Op: "open", Path: path, Err: ErrSymlink}
	}
	return &fs.PathError{Op: "open", Path: path, Err: err}
}

// readFD is readFile for a bare descriptor, which it closes: the same
// checks, in as few system calls as there can be (fstat, one read of the
// size fstat gave, close), as listing many pods reads several small files
// of each.
func readFD(fd int, path string, limit int64) ([]byte, error) {
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "read", Path: path, Err: ErrNotRegular}
	}
	if st.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, st.Size, limit)}
	}
	b := make([]byte, 0, min(st.Size, limit)+1)
	for {
		if len(b) == cap(b) {
			if int64(len(b)) > limit {
				return nil, &fs.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)}
			}
			b = slices.Grow(b, int(min(int64(cap(b)), limit+1-int64(len(b)))))
		}
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
		if int64(len(b)) == st.Size {
			// All fstat saw, and no more than limit: a file growing
			// meanwhile is read as it was, without a read to find its end.
			return b, nil
		}
	}
}

// readFile checks that f is a regular file of at most limit bytes and reads
// it, never more than limit+1 bytes: the size may grow after the fstat.
func readFile(f *os.File, limit int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: ErrNotRegular}
	}
	if fi.Size() > limit {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, fi.Size(), limit)}
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &fs.PathError{Op: "read", Path: f.Name(), Err: fmt.Errorf("%w: over %d bytes", ErrTooLarge, limit)}
	}
	return b, nil
}

// Write creates or (with overwrite) replaces the output file path with what
// fill writes, for files skiff writes at the user's request. An existing
// path that is not a regular file (a symlink, FIFO, device) is refused, so
// nothing is written through a symlink an attacker planted and nothing
// blocks on a FIFO. The content goes to a temporary file in the same
// directory, synced, that is renamed over path only once complete, and the
// directory is synced after: a reader never sees half a file, a failure
// leaves path as it was, and a crash leaves either file whole. The
// records skiff keeps (the CRI server's, CNI attachments, trusted keys)
// are written with it.
func Write(path string, perm fs.FileMode, overwrite bool, fill func(io.Writer) error) error {
	return write(path, perm, overwrite, true, fill)
}

// WriteUnsynced replaces path with data as WriteFile with overwrite does,
// but syncs neither the file nor its directory (1–70 ms on a loaded host):
// for files whose loss in a host crash costs nothing, because what they
// describe is gone with the crash or they are written again before use. A
// crash may leave path empty.
func WriteUnsynced(path string, data []byte, perm fs.FileMode) error {
	return write(path, perm, true, false, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

func write(path string, perm fs.FileMode, overwrite, sync bool, fill func(io.Writer) error) error {
	if err := CheckOutput(path, overwrite); err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, a no-op
	if err := fill(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	flags := uint(unix.RENAME_NOREPLACE)
	if overwrite {
		flags = 0
		// The check above raced with whoever can write dir: look again
		// right before the rename, which itself never follows a symlink.
		if err := CheckOutput(path, overwrite); err != nil {
			return err
		}
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp.Name(), unix.AT_FDCWD, path, flags); err != nil {
		return &fs.PathError{Op: "write", Path: path, Err: err}
	}
	if !sync {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// WriteFile is Write with fixed content.
func WriteFile(path string, data []byte, perm fs.FileMode, overwrite bool) error {
	return Write(path, perm, overwrite, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CheckOutput reports whether Write would refuse path now: a symlink or a
// file that is not regular, or (without overwrite) any existing file. It
// lets a command refuse before doing work whose result it cannot save.
func CheckOutput(path string, overwrite bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return &fs.PathError{Op: "write", Path: path, Err: ErrSymlink}
	case !fi.Mode().IsRegular():
		return &fs.PathError{Op: "write", Path: path, Err: ErrNotRegular}
	case !overwrite:
		return &fs.PathError{Op: "write", Path: path, Err: fs.ErrExist}
	}
	return nil
}
