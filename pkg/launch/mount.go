package launch

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The app's rootfs is hostile: any path in it may be a symlink meant to
// redirect a mount onto the stage1's own files. So every path inside it is
// resolved by openat2 with RESOLVE_IN_ROOT from a handle on the root (a
// symlink to /etc means the rootfs's etc), and mounts go onto the
// /proc/self/fd path of the O_PATH handle that resolution returned.

// openIn opens p inside the directory root without ever leaving it.
func openIn(root int, p string, flags uint64) (int, error) {
	rel := strings.TrimPrefix(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	return unix.Openat2(root, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC | flags,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
}

func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// target returns an O_PATH handle on mount point p inside root, creating
// it (a directory, or an empty file when dir is false) and its parents.
func target(root int, p string, dir bool) (int, error) {
	fd, err := openIn(root, p, 0)
	if !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	parts := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	for i, name := range parts {
		cur := strings.Join(parts[:i+1], "/")
		fd, err := openIn(root, cur, 0)
		if err == nil {
			unix.Close(fd)
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return -1, err
		}
		parent, err := openIn(root, strings.Join(parts[:i], "/"), unix.O_DIRECTORY)
		if err != nil {
			return -1, err
		}
		last := i == len(parts)-1
		err = create(parent, name, dir || !last)
		if errors.Is(err, unix.EEXIST) && last && isSymlink(parent, name) {
			// A dangling symlink, such as /etc/resolv.conf pointing into
			// an absent /run: replace it by the mount point.
			if err = unix.Unlinkat(parent, name, 0); err == nil {
				err = create(parent, name, dir)
			}
		}
		unix.Close(parent)
		if err != nil {
			return -1, err
		}
	}
	return openIn(root, p, 0)
}

func create(parent int, name string, dir bool) error {
	if dir {
		return unix.Mkdirat(parent, name, 0o755)
	}
	f, err := unix.Openat(parent, name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_WRONLY, 0o644)
	if err == nil {
		unix.Close(f)
	}
	return err
}

func isSymlink(parent int, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK
}

var flagNames = map[string]uintptr{
	"ro": unix.MS_RDONLY, "nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"bind": unix.MS_BIND, "rbind": unix.MS_BIND | unix.MS_REC, "strictatime": unix.MS_STRICTATIME,
	"relatime": unix.MS_RELATIME, "noatime": unix.MS_NOATIME, "sync": unix.MS_SYNCHRONOUS,
	"rw": 0, "suid": 0, "dev": 0, "exec": 0,
}

// parseOptions splits mount options into flags and filesystem data.
func parseOptions(opts []string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, o := range opts {
		if f, ok := flagNames[o]; ok {
			flags |= f
		} else {
			data = append(data, o)
		}
	}
	return flags, strings.Join(data, ",")
}

// setAttr applies ro/nosuid/nodev/noexec to the mount at p, recursively:
// a bind mount ignores them on creation.
func setAttr(root int, p string, flags uintptr) error {
	var attr unix.MountAttr
	for f, a := range map[uintptr]uint64{unix.MS_RDONLY: unix.MOUNT_ATTR_RDONLY, unix.MS_NOSUID: unix.MOUNT_ATTR_NOSUID, unix.MS_NODEV: unix.MOUNT_ATTR_NODEV, unix.MS_NOEXEC: unix.MOUNT_ATTR_NOEXEC} {
		if flags&f != 0 {
			attr.Attr_set |= a
		}
	}
	if attr.Attr_set == 0 {
		return nil
	}
	fd, err := openIn(root, p, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr)
}

// mount performs one spec mount inside root. Bind sources are paths of
// the stage1 (outside root) or relative to the bundle directory.
func mount(root int, bundle string, m specs.Mount) error {
	flags, data := parseOptions(m.Options)
	bind := flags&unix.MS_BIND != 0 || m.Type == "bind"
	src, dir := m.Source, true
	if bind {
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
		fi, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
		dir = fi.IsDir()
	}
	fd, err := target(root, m.Destination, dir)
	if err != nil {
		return fmt.Errorf("mount %s: mount point: %w", m.Destination, err)
	}
	defer unix.Close(fd)
	if bind {
		err = unix.Mount(src, fdPath(fd), "", unix.MS_BIND|flags&unix.MS_REC, "")
		if err == nil {
			err = setAttr(root, m.Destination, flags)
		}
	} else {
		err = unix.Mount(src, fdPath(fd), m.Type, flags, data)
		if m.Type == "sysfs" && errors.Is(err, unix.EPERM) {
			// sysfs may only be mounted by the owner of the network
			// namespace; a pod sharing the host's gets the stage1's /sys.
			err = unix.Mount("/sys", fdPath(fd), "", unix.MS_BIND|unix.MS_REC, "")
			if err == nil {
				err = setAttr(root, m.Destination, flags|unix.MS_RDONLY)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Type, m.Destination, err)
	}
	return nil
}

// bindDevices binds each device node of the spec from the stage1's /dev
// (a device cgroup or a user namespace may forbid mknod), or makes it
// with mknod where the stage1's /dev has no such node (the host's devices
// of a privileged app), then adds the usual /dev symlinks.
func bindDevices(root int, devs []specs.LinuxDevice) error {
	for _, d := range devs {
		var err error
		if inStage1(d) {
			err = mount(root, "/", specs.Mount{Destination: d.Path, Source: d.Path, Type: "bind"})
		} else {
			err = mknod(root, d)
		}
		if err != nil {
			return fmt.Errorf("device: %w", err)
		}
	}
	dev, err := openIn(root, "/dev", unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("open /dev: %w", err)
	}
	defer unix.Close(dev)
	for name, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		if err := unix.Symlinkat(to, dev, name); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink /dev/%s: %w", name, err)
		}
	}
	return nil
}

// inStage1 says whether the stage1's node at d's path is device d.
func inStage1(d specs.LinuxDevice) bool {
	var st unix.Stat_t
	if unix.Stat(d.Path, &st) != nil {
		return false
	}
	kind := map[string]uint32{"c": unix.S_IFCHR, "b": unix.S_IFBLK}[d.Type]
	return st.Mode&unix.S_IFMT == kind && unix.Major(st.Rdev) == uint32(d.Major) && unix.Minor(st.Rdev) == uint32(d.Minor)
}

// mknod makes device node d inside root, its parents first, owned and
// with the mode it names (0666 root's where it names none).
func mknod(root int, d specs.LinuxDevice) error {
	dir, err := target(root, path.Dir(d.Path), true)
	if err != nil {
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	defer unix.Close(dir)
	kind := map[string]uint32{"c": unix.S_IFCHR, "b": unix.S_IFBLK}[d.Type]
	if kind == 0 {
		return fmt.Errorf("mknod %s: type %q", d.Path, d.Type)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	name := path.Base(d.Path)
	// The parent is an O_PATH handle, which mknodat and fchownat do not
	// take as a directory: go through its /proc/self/fd path.
	p := fdPath(dir) + "/" + name
	if err := unix.Mknod(p, kind|perm, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return nil
		}
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	if err := unix.Chmod(p, perm); err != nil { // past the umask
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Lchown(p, uid, gid); err != nil {
		return fmt.Errorf("mknod %s: %w", d.Path, err)
	}
	return nil
}

// mtab makes /etc/mtab a symlink to /proc/self/mounts when the image has
// no /etc/mtab, as rkt did: mount, df and older libcs read it. One the
// image has (file or symlink, even dangling) is left alone, and so is an
// /etc where no link can be made: read-only (a volume), or not a real
// directory (a hostile image's /proc links to /etc, and procfs lands there).
func mtab(root int) error {
	etc, err := target(root, "/etc", true)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("/etc/mtab: %w", err)
	}
	defer unix.Close(etc)
	err = unix.Symlinkat("../proc/self/mounts", etc, "mtab")
	switch {
	case errors.Is(err, unix.EEXIST), errors.Is(err, unix.EROFS), errors.Is(err, unix.ENOENT),
		errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return nil
	case err != nil:
		return fmt.Errorf("/etc/mtab: %w", err)
	}
	return nil
}

// mask hides each path of the running root: directories under an empty
// read-only tmpfs, files under /dev/null.
func mask(root int, paths []string) error {
	for _, p := range paths {
		fd, err := openIn(root, p, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = unix.Mount("tmpfs", fdPath(fd), "tmpfs", unix.MS_RDONLY, "")
		} else if err == nil {
			err = unix.Mount("/dev/null", fdPath(fd), "", unix.MS_BIND, "")
		}
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
	}
	return nil
}

// readonly bind-mounts each path onto itself and makes it read-only.
func readonly(root int, paths []string) error {
	for _, p := range paths {
		fd, err := openIn(root, p, 0)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err == nil {
			err = unix.Mount(fdPath(fd), fdPath(fd), "", unix.MS_BIND|unix.MS_REC, "")
			unix.Close(fd)
		}
		if err == nil {
			err = setAttr(root, p, unix.MS_RDONLY)
		}
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", p, err)
		}
	}
	return nil
}
