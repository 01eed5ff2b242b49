// Package mount makes and removes the mounts skiff puts under a pod
// directory: overlays of rendered images, bind mounts, and the sweep that
// unmounts everything below a directory before it is deleted.
package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// ErrStillMounted means something below a directory could not be unmounted.
var ErrStillMounted = errors.New("still mounted")

// Overlay mounts an overlay at target with lowers (topmost first), upper and
// work. upper and work are created if missing. The mount is nosuid and
// nodev: the host must never run a setuid binary or open a device node
// from an image or a pod (stage2 lifts nosuid in the pod's own mount
// namespace, see docs/security.md).
func Overlay(lowers []string, upper, work, target string) error {
	return overlay(lowers, upper, work, target, nil, 0)
}

// OverlayIDMapped is Overlay for a pod with a private user namespace: each
// lower is seen through an idmapped mount made with the user namespace ns
// (its root's files are the pod root's, host uid root, while nothing on
// disk changes), and the upper dir is owned by root. The kernel cannot
// idmap an overlay itself, only its layers (docs/user-namespaces.md).
func OverlayIDMapped(lowers []string, upper, work, target string, ns *os.File, root int) error {
	return overlay(lowers, upper, work, target, ns, root)
}

func overlay(lowers []string, upper, work, target string, ns *os.File, root int) error {
	for _, d := range []string{upper, work, target} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("overlay %s: %w", target, err)
		}
	}
	for _, l := range lowers {
		if strings.ContainsAny(l, ",:") {
			return fmt.Errorf("overlay %s: lower dir %q has a ',' or ':'", target, l)
		}
	}
	if ns != nil {
		if err := os.Chown(upper, root, root); err != nil {
			return fmt.Errorf("overlay %s: %w", target, err)
		}
		mapped := make([]string, len(lowers))
		for i, l := range lowers {
			// A detached idmapped mount, named by its fd: overlayfs takes
			// its own reference, so it is gone once the fd is closed.
			fd, err := unix.OpenTree(unix.AT_FDCWD, l, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
			if err != nil {
				return fmt.Errorf("overlay %s: idmap %s: %w", target, l, err)
			}
			defer unix.Close(fd)
			attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP, Userns_fd: uint64(ns.Fd())}
			if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
				return fmt.Errorf("overlay %s: idmap %s: %w", target, l, err)
			}
			mapped[i] = "/proc/self/fd/" + strconv.Itoa(fd)
		}
		lowers = mapped
	}
	// index=off and xino=off keep the overlay usable when the same lower
	// tree is shared by many pods and the upper moves with its pod dir.
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off,xino=off",
		strings.Join(lowers, ":"), upper, work)
	if err := unix.Mount("overlay", target, "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("overlay %s: %w", target, err)
	}
	return nil
}

var (
	supportOnce sync.Once
	supportErr  error
)

// OverlaySupported reports whether overlayfs can be mounted with an upper
// dir inside dir (the filesystem of the data dir matters, not just the
// kernel). The answer is cached for the process. The probe's overlay is
// volatile: unmounting a plain overlay syncs its upper filesystem, the
// whole data dir's (tens to hundreds of ms on a busy disk, paid by every
// skiff run and every CRI sandbox); a volatile one skips that, and the
// probe writes nothing worth keeping (volatile: Linux 5.10; skiff needs
// 5.12 for mount_setattr already).
func OverlaySupported(dir string) error {
	supportOnce.Do(func() {
		tmp, err := os.MkdirTemp(dir, ".overlay-probe-")
		if err != nil {
			supportErr = err
			return
		}
		defer os.RemoveAll(tmp)
		var ds [4]string
		for i, n := range []string{"l", "u", "w", "m"} {
			ds[i] = filepath.Join(tmp, n)
			if err := os.Mkdir(ds[i], 0o755); err != nil {
				supportErr = err
				return
			}
		}
		opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off,xino=off,volatile", ds[0], ds[1], ds[2])
		if err := unix.Mount("overlay", ds[3], "overlay", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			supportErr = fmt.Errorf("overlay %s: %w", ds[3], err)
			return
		}
		supportErr = unix.Unmount(ds[3], unix.MNT_DETACH)
	})
	return supportErr
}

// Bind bind-mounts src on target, read-only when ro.
func Bind(src, target string, ro bool) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", src, target, err)
	}
	if ro {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}

// BindSecure bind-mounts dir on itself, nosuid and nodev, so a copied
// image tree is as harmless on the host as an overlay.
func BindSecure(dir string) error {
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", dir, err)
	}
	return Harden(dir)
}

// Harden makes the mount at dir and those below it nosuid and nodev.
func Harden(dir string) error {
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV}
	if err := unix.MountSetattr(unix.AT_FDCWD, dir, unix.AT_RECURSIVE|unix.AT_SYMLINK_NOFOLLOW, &attr); err != nil {
		return fmt.Errorf("make %s nosuid,nodev: %w", dir, err)
	}
	return nil
}

// Under returns the mount points at or below dir, deepest first.
func Under(dir string) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	infos, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	var out []string
	for _, m := range infos {
		out = append(out, m.Mountpoint)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// UnmountAll detaches every mount at or below dir, deepest first, and
// fails with ErrStillMounted if any is left. Callers delete dir only after
// this succeeds, so nothing is ever deleted through a mount.
func UnmountAll(dir string) error {
	for range 3 {
		ms, err := Under(dir)
		if err != nil {
			return err
		}
		if len(ms) == 0 {
			return nil
		}
		for _, m := range ms {
			if err := unix.Unmount(m, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil &&
				!errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("unmount %s: %w", m, err)
			}
		}
	}
	ms, err := Under(dir)
	if err != nil {
		return err
	}
	if len(ms) > 0 {
		return fmt.Errorf("unmount under %s: %w: %s", dir, ErrStillMounted, strings.Join(ms, ", "))
	}
	return nil
}
