package cri

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// hostDevices lists the device nodes below dir (the host's /dev), as
// containerd gives a privileged container: every character and block
// device, not through a symlink, except what the app has of its own
// (pseudo-terminals, /dev/pts, /dev/ptmx, /dev/console, shared memory,
// message queues, /dev/fd).
func hostDevices(dir string) ([]specs.LinuxDevice, error) {
	skip := []string{"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev", "ptmx", "console"}
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && (os.IsNotExist(err) || os.IsPermission(err)) {
				return nil // gone meanwhile, or a mount skiff may not read
			}
			return err
		}
		if p != dir && filepath.Dir(p) == dir && slices.Contains(skip, d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return nil
		}
		kind := "b"
		if st.Mode&unix.S_IFMT == unix.S_IFCHR {
			kind = "c"
		} else if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		mode := os.FileMode(st.Mode & 0o777)
		uid, gid := st.Uid, st.Gid
		out = append(out, specs.LinuxDevice{Path: "/dev/" + filepath.ToSlash(rel), Type: kind,
			Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)), FileMode: &mode, UID: &uid, GID: &gid})
		return nil
	})
	return out, err
}
