package launch

import (
	"encoding/json"
	"fmt"
	"path"

	"golang.org/x/sys/unix"
)

// The CRI's Bidirectional mounts: the server attaches a copy of the host
// path that is a peer of the host's mount (a member of its peer group)
// in the app's rootfs, as the pod's mount namespace sees it. The app's
// own namespace makes every mount a slave, which would cut the way back
// to the host, so before it is made stage2 clones each such mount (the
// clone stays a peer) and attaches the clone over the slave once the
// namespace is set up: what the app mounts below it reaches the host.

// sharedMount is a clone of a mount that stays shared, and its path in
// the app.
type sharedMount struct {
	path string
	fd   int // the detached clone (open_tree)
}

// cloneShared clones, recursively and as the pod sees them, the mounts at
// the paths in list (pod.AnnotationSharedMounts: a JSON array, "" for
// none) inside rootfs.
func cloneShared(rootfs, list string) ([]sharedMount, error) {
	if list == "" {
		return nil, nil
	}
	var paths []string
	if err := json.Unmarshal([]byte(list), &paths); err != nil {
		return nil, fmt.Errorf("shared mounts: %w", err)
	}
	root, err := unix.Open(rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	defer unix.Close(root)
	var out []sharedMount
	for _, p := range paths {
		if !path.IsAbs(p) || path.Clean(p) == "/" {
			closeAll(out)
			return nil, fmt.Errorf("shared mount %q: not an absolute path below /", p)
		}
		fd, err := openIn(root, p, 0)
		if err == nil {
			var tree int
			tree, err = unix.OpenTree(fd, "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
			unix.Close(fd)
			fd = tree
		}
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("shared mount %s: %w", p, err)
		}
		out = append(out, sharedMount{path: p, fd: fd})
	}
	return out, nil
}

// attachShared attaches each clone at its path inside root, over what the
// app's namespace has there.
func attachShared(root int, ms []sharedMount) error {
	for _, m := range ms {
		t, err := openIn(root, m.path, 0)
		if err != nil {
			return fmt.Errorf("shared mount %s: %w", m.path, err)
		}
		err = unix.MoveMount(m.fd, "", t, "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
		unix.Close(t)
		if err != nil {
			return fmt.Errorf("shared mount %s: attach: %w", m.path, err)
		}
	}
	return nil
}

func closeAll(ms []sharedMount) {
	for _, m := range ms {
		unix.Close(m.fd)
	}
}
