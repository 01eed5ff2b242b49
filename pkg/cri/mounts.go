package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiffpod/skiff/pkg/mount"
	"github.com/skiffpod/skiff/pkg/pod"
)

// A container's mounts are host paths (the kubelet's /etc/hosts,
// termination log, volumes), which an added app cannot get as sandbox
// volumes: the server bind-mounts each onto its target inside the app's
// rootfs in the pod dir, after the app is added and before it starts.
// stage1-ns shares the pod's opt/stage2 with the pod (docs/app-sandbox.md)
// and stage1-kvm's 9p share crosses mounts, so the app sees them; stage2
// binds the rootfs recursively. app rm unmounts everything below the app.

// checkMounts refuses mounts skiff cannot make.
func checkMounts(ms []*runtimeapi.Mount) error {
	for _, m := range ms {
		if !filepath.IsAbs(m.GetContainerPath()) || !filepath.IsAbs(m.GetHostPath()) {
			return fmt.Errorf("mount %q on %q: %w: paths must be absolute", m.GetHostPath(), m.GetContainerPath(), errInvalid)
		}
		if filepath.Clean(m.GetContainerPath()) == "/" {
			return fmt.Errorf("mount on /: %w", errInvalid)
		}
		if m.GetImage() != nil && m.GetImage().GetImage() != "" {
			return fmt.Errorf("image volume %q: %w: not supported", m.GetImage().GetImage(), errInvalid)
		}
	}
	return nil
}

// bindMounts mounts ms into app's rootfs in pod p.
func bindMounts(p *pod.Pod, app string, ms []*runtimeapi.Mount) error {
	root := p.File(filepath.Join(pod.AppDir(app), "rootfs"))
	for _, m := range ms {
		if err := bindMount(root, m); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.GetHostPath(), m.GetContainerPath(), err)
		}
	}
	return nil
}

func bindMount(root string, m *runtimeapi.Mount) error {
	src := m.GetHostPath()
	fi, err := os.Stat(src)
	if errors.Is(err, os.ErrNotExist) {
		// As the kubelet's runtimes do: a missing host path is made a directory.
		if err = os.MkdirAll(src, 0o755); err == nil {
			fi, err = os.Stat(src)
		}
	}
	if err != nil {
		return err
	}
	rel := strings.TrimPrefix(filepath.Clean(m.GetContainerPath()), "/")
	parent, err := mount.MkdirAllBeneath(root, filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer parent.Close()
	name := filepath.Base(rel)
	if fi.IsDir() {
		err = unix.Mkdirat(int(parent.Fd()), name, 0o755)
	} else {
		var fd int
		fd, err = unix.Openat(int(parent.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		}
	}
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	t, err := unix.Openat2(int(parent.Fd()), name, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	defer unix.Close(t)
	// A detached copy of src, made read-only before it is attached: a
	// remount after would not reach the pod's copy of the mount, which
	// propagation made at attach time.
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
	if err != nil {
		return fmt.Errorf("clone %s: %w", src, err)
	}
	defer unix.Close(tree)
	if m.GetReadonly() {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("make read-only: %w", err)
		}
	}
	return unix.MoveMount(tree, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}
