package store

import (
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/layer"
)

// mergeLayers renders a stack of unpacked layers, bottom first, into one
// tree at dst, applying whiteouts and opaque directories as overlayfs
// would. It serves images whose layers do not fit one overlay. Hard links
// become copies; directory mtimes are not kept. All writes go through an
// os.Root on dst, and every parent was made here as a directory.
func mergeLayers(dst string, bottomFirst iter.Seq2[int, string]) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	dir, err := os.Open(dst)
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, l := range bottomFirst {
		err := filepath.WalkDir(l, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(l, p)
			if err != nil || rel == "." {
				return err
			}
			return mergeEntry(root, int(dir.Fd()), p, rel)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func mergeEntry(root *os.Root, dirfd int, src, rel string) error {
	var st unix.Stat_t
	if err := unix.Lstat(src, &st); err != nil {
		return err
	}
	mode := os.FileMode(st.Mode & 0o7777)
	kind := st.Mode & unix.S_IFMT
	var have unix.Stat_t
	exists := unix.Fstatat(dirfd, rel, &have, unix.AT_SYMLINK_NOFOLLOW) == nil
	if kind == unix.S_IFCHR && st.Rdev == 0 { // a whiteout
		return root.RemoveAll(rel)
	}
	if kind == unix.S_IFDIR {
		opaque, _ := getxattr(src, layer.OpaqueXattr)
		if exists && (have.Mode&unix.S_IFMT != unix.S_IFDIR || opaque == "y") {
			if err := root.RemoveAll(rel); err != nil {
				return err
			}
			exists = false
		}
		if !exists {
			if err := root.Mkdir(rel, 0o700); err != nil {
				return err
			}
		}
	} else {
		if exists {
			if err := root.RemoveAll(rel); err != nil {
				return err
			}
		}
		switch kind {
		case unix.S_IFREG:
			if err := copyFile(root, src, rel); err != nil {
				return err
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(src)
			if err != nil {
				return err
			}
			if err := root.Symlink(target, rel); err != nil {
				return err
			}
		case unix.S_IFIFO:
			if err := unix.Mknodat(dirfd, rel, unix.S_IFIFO|0o600, 0); err != nil {
				return err
			}
		default:
			return nil // the unpacker makes nothing else
		}
	}
	if err := root.Lchown(rel, int(st.Uid), int(st.Gid)); err != nil && os.Geteuid() == 0 {
		return err
	}
	if kind == unix.S_IFLNK {
		return nil
	}
	if err := root.Chmod(rel, mode); err != nil {
		return err
	}
	return copyXattrs(root, src, rel)
}

func copyFile(root *os.Root, src, rel string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := root.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyXattrs copies the xattrs the unpacker keeps (not overlayfs's own).
func copyXattrs(root *os.Root, src, rel string) error {
	list, err := listXattrs(src)
	if err != nil || list == "" {
		return err
	}
	f, err := root.OpenFile(rel, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	procPath := "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
	for _, pair := range strings.Split(list, ",") {
		name, _, _ := strings.Cut(pair, "=")
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		size, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			return err
		}
		val := make([]byte, size)
		if size, err = unix.Lgetxattr(src, name, val); err != nil {
			return err
		}
		if err := unix.Setxattr(procPath, name, val[:size], 0); err != nil {
			return err
		}
	}
	return nil
}
