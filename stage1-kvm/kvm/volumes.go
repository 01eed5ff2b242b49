package kvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// volumes puts the pod's volumes at /skiff/volumes/<name> of the shared
// tree before boot, where stage2 in the guest finds them as stage1-ns's
// do: empty ones as directories, host ones bind-mounted on the host (read-
// only ones remounted so, which the 9p server then enforces).
func volumes(pm *schema.PodManifest) error {
	for _, v := range pm.Volumes {
		switch v.Kind {
		case "empty":
			if err := podunit.EmptyVolume(v, 0); err != nil {
				return err
			}
		case "host":
			if err := bindVolume(v.Name.String(), v.Source, v.ReadOnly != nil && *v.ReadOnly,
				v.Recursive == nil || *v.Recursive); err != nil {
				return fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default:
			return fmt.Errorf("volume %s: unknown kind %q", v.Name, v.Kind)
		}
	}
	return nil
}

func bindVolume(name, source string, readOnly, recursive bool) error {
	if !filepath.IsAbs(source) {
		return fmt.Errorf("source %q is not absolute", source)
	}
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	// The mount point is made, and then opened, inside the rootfs: a
	// symlink there cannot send the mount elsewhere on the host.
	dir := strings.TrimPrefix(podunit.VolumesDir, "/") + "/" + name
	if err := root.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND)
	if recursive {
		flags |= unix.MS_REC
	}
	if err := mountAt(root, dir, source, flags); err != nil {
		return fmt.Errorf("bind %s: %w", source, err)
	}
	// Opened again, the mount point now is the new mount's root.
	if readOnly {
		if err := mountAt(root, dir, "", flags|unix.MS_REMOUNT|unix.MS_RDONLY); err != nil {
			return fmt.Errorf("make %s read-only: %w", source, err)
		}
	}
	return nil
}

// mountAt mounts onto dir, opened inside root without following a symlink.
func mountAt(root *os.Root, dir, source string, flags uintptr) error {
	mp, err := root.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer mp.Close()
	return unix.Mount(source, fmt.Sprintf("/proc/self/fd/%d", mp.Fd()), "", flags, "")
}

// unmountVolumes detaches the host volumes bound for the guest, and any
// tools image an enter killed midway left bound.
func unmountVolumes() error {
	return errors.Join(mount.UnmountAll(filepath.Join(pod.Stage1Rootfs, podunit.VolumesDir)),
		mount.UnmountAll(filepath.Join(pod.Stage1Rootfs, toolsDir)))
}

// toolsDir is where enter --mount-image binds a tools image into the
// shared tree, for the guest agent to mount into the app (docs/debug.md).
const toolsDir = "/skiff/debug"

// shareTools binds the host directory dir read-only, nosuid and nodev
// into the shared tree, at a directory of this process's own under
// toolsDir, and returns its path in the guest. undo unmounts it (through
// the handle on the mount itself, not a path the guest could change) and
// removes the directory.
func shareTools(dir string) (guest string, undo func() error, err error) {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return "", nil, err
	}
	rel := strings.TrimPrefix(toolsDir, "/") + "/" + strconv.Itoa(os.Getpid())
	if err := root.MkdirAll(rel, 0o700); err != nil {
		root.Close()
		return "", nil, fmt.Errorf("share tools: %w", err)
	}
	removeDir := func() error { defer root.Close(); return root.Remove(rel) }
	if err := mountAt(root, rel, dir, unix.MS_BIND|unix.MS_REC); err != nil {
		return "", nil, errors.Join(fmt.Errorf("share tools %s: %w", dir, err), removeDir())
	}
	mp, err := root.OpenFile(rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err == nil {
		err = unix.Mount("", fmt.Sprintf("/proc/self/fd/%d", mp.Fd()), "",
			unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, "")
	}
	undo = func() error {
		var err error
		if mp != nil {
			err = unix.Unmount(fmt.Sprintf("/proc/self/fd/%d", mp.Fd()), unix.MNT_DETACH)
			mp.Close()
		}
		return errors.Join(err, removeDir())
	}
	if err != nil {
		return "", nil, errors.Join(fmt.Errorf("share tools %s read-only: %w", dir, err), undo())
	}
	return "/" + rel, undo, nil
}
