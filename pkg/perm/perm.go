// Package perm applies skiff's permission model (docs/security.md) to the
// files and directories it creates under the data dir: metadata a member
// of the host's "skiff" group may read is root:skiff 0750 (dirs) or 0640
// (files); a pod dir is root:skiff 0710 (members open the files in it by
// name but cannot open, and so cannot flock, the dir itself); image
// content, blobs and pod roots are root-only, 0700/0600.
// Modes are set explicitly after creation, so the umask never widens or
// narrows them.
package perm

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// GroupName is the host group whose members may list pods and images.
const GroupName = "skiff"

// Modes of the two classes.
const (
	SharedDir   os.FileMode = 0o750
	SharedFile  os.FileMode = 0o640
	PrivateDir  os.FileMode = 0o700
	PrivateFile os.FileMode = 0o600
	// SearchDir is a directory the group may pass through but not open:
	// flock(2) needs only an open fd, so whoever can open a directory can
	// lock it.
	SearchDir os.FileMode = 0o710
)

// Group returns the gid of group skiff, or 0 (root's group) when the host
// has no such group.
func Group() int {
	g, err := user.LookupGroup(GroupName)
	if err != nil {
		return 0
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0
	}
	return gid
}

// Shared gives path the shared class: root:skiff, 0750 for a directory,
// 0640 otherwise.
func Shared(path string) error {
	fi, err := lstat(path)
	if err != nil {
		return err
	}
	mode := SharedFile
	if fi.IsDir() {
		mode = SharedDir
	}
	return set(path, mode, Group())
}

// Searchable gives directory path the search class: root:skiff 0710.
func Searchable(path string) error {
	fi, err := lstat(path)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("set permissions of %s: not a directory", path)
	}
	return set(path, SearchDir, Group())
}

// Private gives path the private class: root:root, 0700 for a directory,
// 0600 otherwise.
func Private(path string) error {
	fi, err := lstat(path)
	if err != nil {
		return err
	}
	mode := PrivateFile
	if fi.IsDir() {
		mode = PrivateDir
	}
	return set(path, mode, 0)
}

// MkdirShared creates directory path (not its parents) if missing and
// gives it the shared class; an existing directory is left as it is.
func MkdirShared(path string) error { return mkdir(path, Shared) }

// MkdirPrivate creates directory path (not its parents) if missing and
// gives it the private class; an existing directory is left as it is.
func MkdirPrivate(path string) error { return mkdir(path, Private) }

func mkdir(path string, class func(string) error) error {
	err := os.Mkdir(path, 0o700)
	if errors.Is(err, os.ErrExist) {
		return nil // whatever it is, using it tells
	}
	if err != nil {
		return err
	}
	return class(path)
}

// WriteFile writes data to path (created or truncated) with the shared class
// when shared, else the private one.
func WriteFile(path string, data []byte, shared bool) error {
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return err
	}
	if shared {
		return Shared(path)
	}
	return Private(path)
}

// lstat refuses symlinks: chmod would follow them.
func lstat(path string) (os.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return nil, fmt.Errorf("set permissions of %s: %w", path, ErrSymlink)
	}
	return fi, nil
}

// set changes mode, and owner to root:gid when running as root (an
// unprivileged process, such as a unit test, cannot and needs not).
func set(path string, mode os.FileMode, gid int) error {
	if os.Geteuid() == 0 {
		if err := os.Lchown(path, 0, gid); err != nil {
			return fmt.Errorf("set owner of %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("set mode of %s: %w", path, err)
	}
	return nil
}

// Differs says how path differs from its class (shared or private): mode,
// owner, group, a symlink in place of the file; "" when it does not.
// Owners are checked only when running as root, who sets them.
func Differs(path string, shared bool) string {
	return differs(path, shared, false)
}

// DiffersSearchable is Differs for the search class of Searchable.
func DiffersSearchable(path string) string { return differs(path, true, true) }

func differs(path string, shared, search bool) string {
	fi, err := os.Lstat(path)
	if err != nil {
		return err.Error()
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		return "is a symlink"
	}
	want, gid := PrivateFile, 0
	switch {
	case search && fi.IsDir():
		want, gid = SearchDir, Group()
	case shared && fi.IsDir():
		want, gid = SharedDir, Group()
	case shared:
		want, gid = SharedFile, Group()
	case fi.IsDir():
		want = PrivateDir
	}
	if got := fi.Mode() & (os.ModePerm | os.ModeSetuid | os.ModeSetgid | os.ModeSticky); got != want {
		return fmt.Sprintf("mode %04o, want %04o", uint32(got.Perm()), uint32(want))
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 && (st.Uid != 0 || int(st.Gid) != gid) {
		return fmt.Sprintf("owner %d:%d, want 0:%d", st.Uid, st.Gid, gid)
	}
	return ""
}
