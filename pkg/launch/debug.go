package launch

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
)

// AppRoot opens the root of process pid for PrepareTools.
func AppRoot(pid int) (int, error) {
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/root", pid), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open app root: %w", err)
	}
	return fd, nil
}

// PrepareTools is the stage1's side of skiff debug, before it starts
// stage2 exec --mount-tree=TREE --mount-point=POINT (MountTools): tree, a
// detached read-only, nosuid, nodev copy of the host directory dir, and
// point, the directory pod.DebugMountPoint in the app whose root is open
// as root (its /proc/PID/root), created without following anything the
// app may have put there.
// Both fds are inherited across exec. Every session holds a shared lock
// on the directory while it runs; remove, called when the command has
// ended, removes the directory when no other session holds it (removing
// it would detach that session's mount).
func PrepareTools(root int, dir string) (tree, point int, remove func() error, err error) {
	tree, err = unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.AT_RECURSIVE)
	if err != nil {
		return -1, -1, nil, fmt.Errorf("clone %s: %w", dir, err)
	}
	fail := func(err error) (int, int, func() error, error) {
		unix.Close(tree)
		return -1, -1, nil, err
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fail(fmt.Errorf("make %s read-only: %w", dir, err))
	}
	parent, name := filepath.Split(pod.DebugMountPoint)
	strict := uint64(unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS)
	dev, err := unix.Openat2(root, strings.Trim(parent, "/"), &unix.OpenHow{
		Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | strict})
	if err != nil {
		return fail(fmt.Errorf("open the app's %s: %w", parent, err))
	}
	open := func(flags uint64) (int, error) {
		return unix.Openat2(dev, name, &unix.OpenHow{Flags: flags | unix.O_DIRECTORY | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_BENEATH | strict})
	}
	// A session that ends may remove the directory between our mkdir and
	// our lock: then make it again.
	var last error
	for range 5 {
		if last = unix.Mkdirat(dev, name, 0o755); last != nil && !errors.Is(last, unix.EEXIST) {
			break
		}
		lock, err := open(unix.O_RDONLY | unix.O_CLOEXEC)
		if last = err; err != nil {
			continue
		}
		var held, linked unix.Stat_t
		last = errors.Join(unix.Flock(lock, unix.LOCK_SH), unix.Fstat(lock, &held), unix.Fstatat(dev, name, &linked, unix.AT_SYMLINK_NOFOLLOW))
		if last == nil && (held.Ino != linked.Ino || held.Dev != linked.Dev) {
			last = errors.New("removed meanwhile")
		}
		if last == nil {
			point, last = open(unix.O_PATH)
		}
		if last != nil {
			unix.Close(lock)
			continue
		}
		remove = func() error {
			defer unix.Close(dev)
			defer unix.Close(lock)
			if unix.Flock(lock, unix.LOCK_EX|unix.LOCK_NB) != nil {
				return nil // another session still has its tools there
			}
			err := unix.Unlinkat(dev, name, unix.AT_REMOVEDIR)
			if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTEMPTY) {
				return fmt.Errorf("remove %s: %w", pod.DebugMountPoint, err)
			}
			return nil
		}
		return tree, point, remove, nil
	}
	unix.Close(dev)
	return fail(fmt.Errorf("make %s in the app: %w", pod.DebugMountPoint, last))
}

// MountTools gives the calling thread a mount namespace of its own, a
// copy of the app's it has joined, and attaches there the detached mount
// tree (an open_tree fd the stage1 made on the host, read-only) at dir,
// which must be the directory the stage1 created and passed as point. The
// copy's mounts are made slaves first: they stay peers of the app's
// otherwise, and the mount would propagate into the app. Nothing is
// mounted in the app's namespace, so nothing is left there when the
// command ends (docs/debug.md).
func MountTools(tree, point int, dir string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("mount tools: unshare mount namespace: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("mount tools: make mounts slaves: %w", err)
	}
	// The same directory, now as a mount point of this namespace; never
	// through a symlink the app may have put there since.
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return fmt.Errorf("mount tools: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var got, want unix.Stat_t
	if err := unix.Fstat(fd, &got); err != nil {
		return fmt.Errorf("mount tools: %w", err)
	}
	if err := unix.Fstat(point, &want); err != nil {
		return fmt.Errorf("mount tools: %w", err)
	}
	if got.Dev != want.Dev || got.Ino != want.Ino {
		return fmt.Errorf("mount tools: %s: %w: not the directory stage1 made", dir, ErrUnsupported)
	}
	if err := unix.MoveMount(tree, "", fd, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("mount tools at %s: %w", dir, err)
	}
	return nil
}

// ToolsPath is the PATH a command run from a tools image mounted at dir
// gets: its usr/local/bin first (where a tools image puts the programs that
// must not load the app's libraries), then the usual directories.
func ToolsPath(dir string) string {
	var p []string
	for _, d := range []string{"usr/local/bin", "usr/bin", "bin", "usr/sbin", "sbin"} {
		p = append(p, dir+"/"+d)
	}
	return strings.Join(p, ":")
}

// SetEnv sets name=value in env, replacing any earlier value.
func SetEnv(env []string, name, value string) []string {
	env = slices.DeleteFunc(slices.Clone(env), func(e string) bool { return strings.HasPrefix(e, name+"=") })
	return append(env, name+"="+value)
}

// AddCaps gives the process of s the capabilities caps (CAP_ names) on top
// of its own: in its bounding, effective, permitted, inheritable and
// ambient sets (ambient, so that a non-root user keeps them across
// execve). When s has skiff's default seccomp profile, made for its
// bounding set, the profile is made again for the new one, as it would
// have been for an app given those capabilities; a profile of the app's
// own is kept as it is.
func AddCaps(s *specs.Spec, caps []string) error {
	if len(caps) == 0 {
		return nil
	}
	if _, err := capSet(caps); err != nil {
		return err
	}
	if s.Process == nil {
		return fmt.Errorf("add capabilities: %w: no process", ErrUnsupported)
	}
	c := s.Process.Capabilities
	if c == nil {
		c = &specs.LinuxCapabilities{}
		s.Process.Capabilities = c
	}
	old := slices.Clone(c.Bounding)
	add := func(set []string) []string {
		set = append(slices.Clone(set), caps...)
		slices.Sort(set)
		return slices.Compact(set)
	}
	c.Bounding, c.Effective, c.Permitted = add(c.Bounding), add(c.Effective), add(c.Permitted)
	c.Inheritable, c.Ambient = add(c.Inheritable), add(c.Ambient)
	if s.Linux != nil && s.Linux.Seccomp != nil && sameProfile(s.Linux.Seccomp, appspec.DefaultSeccomp(old)) {
		s.Linux.Seccomp = appspec.DefaultSeccomp(c.Bounding)
	}
	return nil
}

// sameProfile compares two profiles as the spec file carries them.
func sameProfile(a, b *specs.LinuxSeccomp) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
