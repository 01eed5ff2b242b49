// Package layer unpacks one OCI image layer (an uncompressed tar) into a
// directory tree of its own, in the form overlayfs stacks as a lowerdir:
// an OCI whiteout ".wh.NAME" becomes a 0:0 character device NAME, and an
// opaque-directory marker ".wh..wh..opq" becomes the xattr
// trusted.overlay.opaque=y on its directory. Both are written only by this
// unpacker: device nodes in the tar and trusted.* xattrs from the image
// are refused or dropped, so an image cannot forge them.
//
// Every layer is hostile: all writes go through an os.Root, nothing is
// written through a symlink (symlinks are kept, never followed), and
// names, depth, size and entry count are bounded.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Default limits of Options.
const (
	DefaultMaxBytes   = 16 << 30
	DefaultMaxEntries = 1 << 20
	DefaultMaxDepth   = 256
	// MaxPathLen is PATH_MAX: a longer name cannot be opened in one call.
	MaxPathLen = 4096
	// maxComponent is NAME_MAX.
	maxComponent = 255
)

// The OCI whiteout spellings (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// OpaqueXattr marks an overlayfs directory that hides the lower ones.
	OpaqueXattr = "trusted.overlay.opaque"
)

// Options bound Unpack; a zero field means its default.
type Options struct {
	MaxBytes   int64 // total size of file contents
	MaxEntries int   // tar entries
	MaxDepth   int   // path components of one name
}

// Unpack unpacks the uncompressed layer tar r into the empty directory
// behind root.
//
// Refused, as an *UnsafeEntryError naming the entry: absolute names and
// ".." components, names longer than PATH_MAX or deeper than MaxDepth,
// entries under a symlink or file, hard links to anything not unpacked
// before them in this layer, char and block devices, whiteouts of "."
// or "..", a whiteout of something this layer itself holds, and replacing
// a directory by a non-directory. A directory that replaces a whiteout of
// this layer is made opaque, as the OCI rules say it hides the lower one.
// Kept: modes with setuid/setgid/sticky, owners, mtimes, FIFOs, and the
// user.* and security.capability xattrs of regular files; other xattrs
// are dropped. Other ".wh..wh." entries (aufs bookkeeping) are skipped.
//
// On error the directory holds a partial tree: callers unpack into a
// temporary directory and discard it.
func Unpack(r io.Reader, root *os.Root, opts Options) error {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	u := &unpacker{
		root:      root,
		opts:      opts,
		dirs:      map[string]*tar.Header{".": nil},
		files:     map[string]bool{},
		whiteouts: map[string]bool{},
		opaque:    map[string]bool{},
	}
	if err := u.run(tar.NewReader(r)); err != nil {
		return fmt.Errorf("unpack layer: %w", err)
	}
	return nil
}

// unpacker holds the state of one Unpack; the target is private to it, so
// what it records about the tree is the truth.
type unpacker struct {
	root      *os.Root
	opts      Options
	dirs      map[string]*tar.Header // directories created; header applied at the end
	files     map[string]bool        // non-directories from the tar: valid hard link targets
	whiteouts map[string]bool        // whiteout devices we made
	opaque    map[string]bool        // directories marked opaque
	total     int64
}

func (u *unpacker) run(tr *tar.Reader) error {
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if n >= u.opts.MaxEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, u.opts.MaxEntries)
		}
		if err := u.entry(tr, h); err != nil {
			return err
		}
	}
	return u.finishDirs()
}

// cleanName normalises a tar entry name, refusing absolute names, "..",
// and names too long or too deep.
func (u *unpacker) cleanName(name string) (string, error) {
	switch {
	case strings.HasPrefix(name, "/"):
		return "", unsafeEntry(name, "absolute path")
	case len(name) > MaxPathLen:
		return "", unsafeEntry(name[:64]+"...", fmt.Sprintf("name longer than %d bytes", MaxPathLen))
	case strings.ContainsRune(name, 0):
		return "", unsafeEntry(name, "NUL in name")
	}
	parts := strings.Split(name, "/")
	if slices.Contains(parts, "..") {
		return "", unsafeEntry(name, `contains ".."`)
	}
	if len(parts) > u.opts.MaxDepth {
		return "", unsafeEntry(name[:min(len(name), 64)]+"...", fmt.Sprintf("deeper than %d components", u.opts.MaxDepth))
	}
	if slices.ContainsFunc(parts, func(p string) bool { return len(p) > maxComponent }) {
		return "", unsafeEntry(name, fmt.Sprintf("a component longer than %d bytes", maxComponent))
	}
	return path.Clean(name), nil
}

func (u *unpacker) entry(tr *tar.Reader, h *tar.Header) error {
	if h.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := u.cleanName(h.Name)
	if err != nil {
		return err
	}
	if name == "." {
		return nil // the layer's top directory: the caller's, not ours
	}
	base := path.Base(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return u.whiteout(h.Name, name, base)
	}

	if err := u.parents(h.Name, name); err != nil {
		return err
	}
	if h.Typeflag == tar.TypeDir {
		if _, ok := u.dirs[name]; !ok {
			wasWhiteout := u.whiteouts[name]
			if err := u.replace(name); err != nil {
				return err
			}
			if err := u.mkdir(name); err != nil {
				return err
			}
			if wasWhiteout { // deleted below, new here: hide the lower one
				if err := u.setOpaque(name); err != nil {
					return err
				}
			}
		}
		u.dirs[name] = h // applied after the children are in
		return nil
	}
	if _, ok := u.dirs[name]; ok {
		return unsafeEntry(h.Name, "replaces a directory")
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeFifo, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock:
		return unsafeEntry(h.Name, "device node")
	default:
		return unsafeEntry(h.Name, fmt.Sprintf("unsupported type %q", h.Typeflag))
	}
	if h.Typeflag == tar.TypeLink {
		target, err := u.cleanName(h.Linkname)
		if err != nil || !u.files[target] {
			return unsafeEntry(h.Name, fmt.Sprintf("hard link target %q is not a file unpacked before it in this layer", h.Linkname))
		}
	}
	if h.Typeflag == tar.TypeReg {
		u.total += h.Size
		if u.total > u.opts.MaxBytes {
			return fmt.Errorf("%w: %q takes the contents past %d bytes", ErrTooLarge, h.Name, u.opts.MaxBytes)
		}
	}
	if err := u.replace(name); err != nil {
		return err
	}
	u.files[name] = true

	switch h.Typeflag {
	case tar.TypeReg:
		if err := u.regular(tr, h, name); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := u.root.Symlink(h.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink: // shares the target's inode and metadata
		return u.root.Link(path.Clean(h.Linkname), name)
	case tar.TypeFifo:
		if err := u.atParent(name, func(fd int, base string) error {
			return unix.Mkfifoat(fd, base, 0o600)
		}); err != nil {
			return err
		}
	}
	return u.attrs(h, name)
}

// whiteout turns ".wh.NAME" into a 0:0 char device NAME and
// ".wh..wh..opq" into the opaque xattr on its directory.
func (u *unpacker) whiteout(orig, name, base string) error {
	dir := path.Dir(name)
	if err := u.parents(orig, name); err != nil {
		return err
	}
	if base == opaqueMarker {
		if u.opaque[dir] {
			return nil
		}
		if dir == "." {
			// The layer root is a lowerdir's top: opaque there means
			// nothing in overlayfs, and the OCI rule says "this layer
			// hides all below", which stacking expresses by cutting the
			// stack, not by an xattr. Keep it simple: refuse.
			return unsafeEntry(orig, "opaque marker at the layer root")
		}
		return u.setOpaque(dir)
	}
	if strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix) {
		return nil // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return unsafeEntry(orig, fmt.Sprintf("whiteout of %q", victim))
	}
	target := path.Join(dir, victim)
	if u.whiteouts[target] {
		return nil
	}
	if _, ok := u.dirs[target]; ok || u.files[target] {
		return unsafeEntry(orig, "whiteout of an entry of the same layer")
	}
	if err := u.atParent(target, func(fd int, b string) error {
		return unix.Mknodat(fd, b, unix.S_IFCHR|0o600, 0)
	}); err != nil {
		return err
	}
	u.whiteouts[target] = true
	return nil
}

func (u *unpacker) setOpaque(dir string) error {
	d, err := u.root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Fsetxattr(int(d.Fd()), OpaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("mark %q opaque: %w", dir, err)
	}
	u.opaque[dir] = true
	return nil
}

// parents makes sure every ancestor of name is a directory this unpacking
// created, creating missing ones, so no write ever goes through a symlink.
func (u *unpacker) parents(orig, name string) error {
	dir := path.Dir(name)
	if _, ok := u.dirs[dir]; ok {
		return nil
	}
	if u.files[dir] {
		return unsafeEntry(orig, fmt.Sprintf("parent %q is not a directory of this layer", dir))
	}
	if u.whiteouts[dir] { // deleted below, new here: as a directory entry would
		if err := u.replace(dir); err != nil {
			return err
		}
		if err := u.mkdir(dir); err != nil {
			return err
		}
		return u.setOpaque(dir)
	}
	if err := u.parents(orig, dir); err != nil {
		return err
	}
	return u.mkdir(dir)
}

// replace removes an earlier non-directory or whiteout at name: later
// entries win, as in tar, and removing first means we never open through
// an old symlink.
func (u *unpacker) replace(name string) error {
	if !u.files[name] && !u.whiteouts[name] {
		return nil
	}
	delete(u.files, name)
	delete(u.whiteouts, name)
	return u.root.Remove(name)
}

func (u *unpacker) mkdir(name string) error {
	u.dirs[name] = nil
	return u.root.Mkdir(name, 0o700)
}

// keepXattr is the allow-list of image xattrs: user data and file
// capabilities. trusted.* (overlayfs's own among them) and the rest of
// security.* are the host's to set, never an image's.
func keepXattr(attr string) bool {
	return strings.HasPrefix(attr, "user.") || attr == "security.capability"
}

func (u *unpacker) regular(tr *tar.Reader, h *tar.Header, name string) error {
	f, err := u.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, tr, h.Size); err != nil {
		return fmt.Errorf("write %q: %w", h.Name, err)
	}
	for k, v := range h.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !keepXattr(attr) {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set xattr %s on %q: %w", attr, h.Name, err)
		}
	}
	return f.Close()
}

// attrs applies owner, mode and mtime of h to name, in the order that
// keeps setuid bits (chown clears them). Symlinks keep their own mode.
func (u *unpacker) attrs(h *tar.Header, name string) error {
	if err := u.root.Lchown(name, h.Uid, h.Gid); err != nil {
		return err
	}
	if h.Typeflag != tar.TypeSymlink {
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if err := u.root.Chmod(name, mode); err != nil {
			return err
		}
	}
	// os.Root has no Lchtimes: set the time on the parent's fd, no-follow.
	return u.atParent(name, func(fd int, base string) error {
		t := unix.NsecToTimespec(max(h.ModTime.UnixNano(), 0))
		return unix.UtimesNanoAt(fd, base, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// atParent runs fn with an fd of name's parent directory, opened through
// the root, and name's last component, for the *at calls os.Root lacks.
func (u *unpacker) atParent(name string, fn func(fd int, base string) error) error {
	d, err := u.root.OpenFile(path.Dir(name), os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := fn(int(d.Fd()), path.Base(name)); err != nil {
		return &os.PathError{Op: "at", Path: name, Err: err}
	}
	return nil
}

// finishDirs applies directory headers deepest first, so restrictive
// modes and mtimes are set after the children were written.
func (u *unpacker) finishDirs() error {
	names := make([]string, 0, len(u.dirs))
	for n := range u.dirs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range slices.Backward(names) {
		h := u.dirs[n]
		switch {
		case n == ".":
		case h == nil: // implied by a deeper entry: the usual default
			if err := u.root.Chmod(n, 0o755); err != nil {
				return err
			}
		default:
			if err := u.attrs(h, n); err != nil {
				return err
			}
		}
	}
	return nil
}
