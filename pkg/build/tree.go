package build

import (
	"archive/tar"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// node is one entry of an image tree: its content is a host file (src)
// or bytes (data), never copied before the image is written.
type node struct {
	typ  byte // tar.TypeReg, TypeDir or TypeSymlink
	mode fs.FileMode
	link string
	src  string // the host file: srcDir/srcRel
	data []byte
	size int64 // of src when it was walked
	// srcDir is the directory the user named (resolved), srcRel the
	// file below it: src is opened without following any symlink below
	// srcDir, so a file swapped for a symlink after the walk is refused.
	srcDir, srcRel string
	from           string // the package or host path it came from
	// owner, when not nil, is kept from a base image (others are 0:0).
	owner *[2]int
}

// tree is an image being assembled, by clean relative path ("usr/bin/x").
// Symlinks are resolved inside it, never on the host.
type tree map[string]*node

// addHost adds the host file or directory host at image path dst. Only
// regular files, directories and symlinks are taken; anything else
// (devices, FIFOs, sockets) is an error naming it.
func (t tree) addHost(host, dst, from string) error {
	return t.add(host, dst, from, false)
}

// add is addHost; with owners, the entries keep their owners.
func (t tree) add(host, dst, from string, owners bool) error {
	host = filepath.Clean(host)
	// The user's own path may pass through symlinks; nothing below it may.
	if parent, err := filepath.EvalSymlinks(filepath.Dir(host)); err == nil {
		host = filepath.Join(parent, filepath.Base(host))
	}
	top := filepath.Dir(host)
	for d := path.Dir(clean(dst)); d != "." && d != "/" && t[d] == nil; d = path.Dir(d) {
		t[d] = &node{typ: tar.TypeDir, mode: 0o755, from: from}
	}
	return filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(host, p)
		if err != nil {
			return err
		}
		name := clean(path.Join(dst, filepath.ToSlash(rel)))
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n := &node{mode: fi.Mode().Perm() | fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), from: from}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && owners {
			n.owner = &[2]int{int(st.Uid), int(st.Gid)}
		}
		switch {
		case fi.Mode().IsRegular():
			n.typ, n.src, n.size = tar.TypeReg, p, fi.Size()
			if n.srcRel, err = filepath.Rel(top, p); err != nil {
				return err
			}
			n.srcDir = top
		case fi.IsDir():
			n.typ = tar.TypeDir
		case fi.Mode()&fs.ModeSymlink != 0:
			n.typ = tar.TypeSymlink
			if n.link, err = os.Readlink(p); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: %s is neither a file, a directory nor a symlink", from, p)
		}
		if name == "" {
			return nil
		}
		t[name] = n
		return nil
	})
}

// clean makes an image path relative and clean; "" is the root.
func clean(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	return p
}

const maxLinks = 40 // as the kernel's ELOOP limit

// resolve follows p through the tree's symlinks (absolute targets start
// at the image root, ".." stops there) and returns the path it names
// and every symlink it went through on the way.
func (t tree) resolve(p string) (string, []string, error) {
	rest := strings.Split(clean(p), "/")
	cur := ""
	var links []string
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			if cur == "." {
				cur = ""
			}
			continue
		}
		next := clean(path.Join(cur, c))
		n := t[next]
		if n == nil {
			return "", nil, fs.ErrNotExist
		}
		if n.typ != tar.TypeSymlink {
			if len(rest) > 0 && n.typ != tar.TypeDir {
				return "", nil, fs.ErrNotExist
			}
			cur = next
			continue
		}
		if len(links) == maxLinks {
			return "", nil, fmt.Errorf("%s: too many levels of symlinks", p)
		}
		links = append(links, next)
		if strings.HasPrefix(n.link, "/") {
			cur = ""
		}
		rest = append(strings.Split(n.link, "/"), rest...)
	}
	return cur, links, nil
}

// keep reports whether image path p survives pruning.
func pruned(p string, keep []string) bool {
	for _, k := range keep {
		k = clean(k)
		if p == k || strings.HasPrefix(p, k+"/") || strings.HasPrefix(k, p+"/") {
			return false
		}
	}
	for _, d := range prunedDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// open opens the node's host file: beneath srcDir without following a
// symlink, without waiting on a FIFO, and only if it is a regular file.
func (n *node) open() (*os.File, error) {
	d, err := unix.Open(n.srcDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: n.srcDir, Err: err}
	}
	defer unix.Close(d)
	fd, err := unix.Openat2(d, n.srcRel, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: n.src, Err: err}
	}
	f := os.NewFile(uintptr(fd), n.src)
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w", n.src, errNotRegular)
	}
	return f, nil
}
