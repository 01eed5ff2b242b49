package cri

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
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

// checkMounts refuses mounts skiff cannot make, and Bidirectional
// propagation in a container that is not privileged (as the kubelet's
// validation does: such a mount lets the container mount on the host).
func checkMounts(ms []*runtimeapi.Mount, privileged bool) error {
	for _, m := range ms {
		if m.GetPropagation() == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && !privileged {
			return fmt.Errorf("mount %q: %w: Bidirectional propagation needs a privileged container", m.GetHostPath(), errInvalid)
		}
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

// bindMounts mounts ms into app's rootfs in pod p. With inPod (stage1-ns,
// whose pod has a mount namespace of its own) each is attached in the
// pod's mount namespace only, not on the host: a copy attached on the
// host would keep the host path's mount points busy there (rmdir of a
// directory mounted on below the copy fails with EBUSY in the namespace
// that has the copy; in another namespace the kernel detaches it).
func bindMounts(p *pod.Pod, app string, ms []*runtimeapi.Mount, inPod bool) error {
	root := p.File(filepath.Join(pod.AppDir(app), "rootfs"))
	pid := 0
	if inPod {
		var err error
		if pid, err = p.Pid(); err != nil {
			return fmt.Errorf("mounts of %s: %w", app, err)
		}
	}
	for _, m := range ms {
		if err := bindMount(root, m, pid, pod.InPodAppsDir+"/"+app+"/rootfs"); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.GetHostPath(), m.GetContainerPath(), err)
		}
	}
	return nil
}

// bindMount mounts m beneath root, the app's rootfs on the host; with pid
// not 0, in the mount namespace of process pid, where the rootfs is at
// inPodRoot.
func bindMount(root string, m *runtimeapi.Mount, pid int, inPodRoot string) error {
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
	prop, err := propagation(src, m.GetPropagation())
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
		// The top mount only, as runc's read-only bind; the mounts below
		// it too with recursive_read_only.
		flags := unix.AT_EMPTY_PATH
		if m.GetRecursiveReadOnly() {
			flags |= unix.AT_RECURSIVE
		}
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		if err := unix.MountSetattr(tree, "", uint(flags), &attr); err != nil {
			return fmt.Errorf("make read-only: %w", err)
		}
	}
	if prop != 0 {
		attr := unix.MountAttr{Propagation: prop}
		if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("set propagation: %w", err)
		}
	}
	if pid != 0 {
		return attachIn(pid, tree, inPodRoot, rel)
	}
	return unix.MoveMount(tree, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
}

// propagation is how the copy of host path src propagates, for a mount
// that asks for p, as containerd does: None (rprivate) receives nothing;
// HostToContainer (rslave) receives the host's mounts below src, which
// must be on a shared or slave mount; Bidirectional (rshared) is a peer of
// src's mount, which must be shared, so mounts reach it from the host and
// the host from it. The copy is a clone of the host's mount, in its peer
// group: 0 leaves it so.
func propagation(src string, p runtimeapi.MountPropagation) (uint64, error) {
	if p == runtimeapi.MountPropagation_PROPAGATION_PRIVATE {
		return unix.MS_PRIVATE, nil
	}
	shared, slave, err := mount.Propagation(src)
	if err != nil {
		return 0, err
	}
	switch {
	case p == runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL && !shared:
		return 0, fmt.Errorf("%w: Bidirectional propagation: %s is not on a shared mount", errInvalid, src)
	case p == runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER && !shared && !slave:
		return 0, fmt.Errorf("%w: HostToContainer propagation: %s is not on a shared or slave mount", errInvalid, src)
	case p == runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
		return unix.MS_SLAVE, nil
	}
	return 0, nil
}

// attachIn attaches the detached mount tree at rel beneath dir, both as
// the mount namespace of process pid sees them, from a thread that joins
// that namespace and is thrown away after.
func attachIn(pid, tree int, dir, rel string) error {
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		ch <- func() error {
			ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/mnt", pid))
			if err != nil {
				return fmt.Errorf("pod mount namespace: %w", err)
			}
			defer ns.Close()
			// setns into a mount namespace needs a thread that shares
			// no filesystem context (root, cwd) with the others.
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("pod mount namespace: %w", err)
			}
			if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("pod mount namespace: %w", err)
			}
			d, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s in the pod: %w", dir, err)
			}
			defer unix.Close(d)
			t, err := unix.Openat2(d, rel, &unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC | unix.O_NOFOLLOW, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
			if err != nil {
				return fmt.Errorf("open target in the pod: %w", err)
			}
			defer unix.Close(t)
			return unix.MoveMount(tree, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		}()
	}()
	return <-ch
}
