package aci

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
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"
)

// Default limits of ExtractOptions.
const (
	DefaultMaxBytes   = 16 << 30
	DefaultMaxEntries = 1 << 20
)

// Limits on every entry, whatever the options: Linux's PATH_MAX for names
// and link targets, a nesting depth no real image comes near, and ids that
// fit the kernel's 31 bits (larger ones alias the overflow and nobody ids
// in some user namespaces, and tools disagree on their sign).
const (
	MaxPathLen = 4096
	MaxDepth   = 1024
	MaxID      = 1<<31 - 1
)

// allowedXattrs says which "SCHILY.xattr." records of an image are applied:
// the user namespace, and file capabilities (only when owners are kept, as
// they mean nothing without them). trusted.* (overlayfs's own
// trusted.overlay.* among them, which would make a layer lie to the kernel
// about whiteouts and redirects) and every other security.* attribute
// (SELinux labels, IMA/EVM) are dropped: they are the host's to set.
func allowedXattr(name string, noChown bool) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability" && !noChown
}

// ExtractOptions bound and adjust Extract.
type ExtractOptions struct {
	// MaxBytes bounds the total size of file contents; 0 means DefaultMaxBytes.
	MaxBytes int64
	// MaxEntries bounds the number of tar entries; 0 means DefaultMaxEntries.
	MaxEntries int
	// NoChown keeps the extracting user as owner of everything, for
	// unprivileged extraction. Setuid/setgid bits are then dropped too.
	NoChown bool
}

// Extract unpacks the uncompressed ACI tar r into the directory behind root,
// giving root/manifest and root/rootfs, and returns the manifest.
//
// Only "manifest" and "rootfs/..." may appear. Rejected, as an
// *UnsafeEntryError naming the entry: absolute names, ".." components,
// entries whose parent is a symlink (nothing is ever written through a
// symlink, wherever it points), hardlinks to anything not already
// extracted as a file of this archive, char and block devices, and
// replacing a directory by a non-directory. FIFOs are allowed: they are
// inert without a reader and some base images ship one. Symlink targets are
// data and may point anywhere. Also rejected: names or link targets longer
// than MaxPathLen, names deeper than MaxDepth components, uids and gids
// above MaxID, sparse files (GNU or PAX: their declared size is not
// bounded by the archive's), and an image with no rootfs entry. Modes
// (with setuid/setgid/sticky), numeric owners, mtimes, hardlinks and the
// allowed "SCHILY.xattr." PAX records of regular files are kept (see
// allowedXattr); other xattrs are dropped.
//
// On error the directory may hold a partial tree; callers extract into a
// temporary directory and discard it.
func Extract(r io.Reader, root *os.Root, opts ExtractOptions) (*schema.ImageManifest, error) {
	m, err := extract(r, root, opts)
	if err != nil {
		return nil, fmt.Errorf("extract image: %w", err)
	}
	return m, nil
}

// Validate reads the uncompressed ACI tar r up to its end-of-archive marker
// and returns its manifest if Extract would accept it, writing nothing. The
// store runs it while copying an image in, to refuse a bad image up front.
func Validate(r io.Reader, opts ExtractOptions) (*schema.ImageManifest, error) {
	m, err := extract(r, nil, opts)
	if err != nil {
		return nil, fmt.Errorf("validate image: %w", err)
	}
	return m, nil
}

// extract is Extract, or Validate when root is nil.
func extract(r io.Reader, root *os.Root, opts ExtractOptions) (*schema.ImageManifest, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	x := &extractor{
		root:     root,
		opts:     opts,
		dirs:     map[string]*tar.Header{".": nil},
		files:    map[string]bool{},
		parentFD: -1,
	}
	if root != nil {
		top, err := root.Open(".")
		if err != nil {
			return nil, err
		}
		x.top = top
		defer x.closeParent()
		defer top.Close()
	}
	return x.run(tar.NewReader(r))
}

// extractor holds the state of one Extract; the target is private to it,
// so what it records about the tree is the truth.
type extractor struct {
	root     *os.Root
	opts     ExtractOptions
	dirs     map[string]*tar.Header // directories created; header applied at the end
	files    map[string]bool        // non-directories created, valid hardlink targets
	total    int64
	manifest *schema.ImageManifest
	rootfs   bool // an entry at or under rootfs/ was seen

	// Every file operation is an *at call on the entry's parent directory,
	// opened by the kernel in one openat2 beneath top that follows no
	// symlink. os.Root resolves a path one component per system call on
	// every operation, which made a deep chain of directories quadratic
	// (1024 levels: 40 s); this is one call per entry, and none at all
	// when the entry shares its parent with the one before, as most do.
	top        *os.File // the target directory, held open
	parentName string   // the directory parentFD is open on
	parentFD   int
}

func (x *extractor) run(tr *tar.Reader) (*schema.ImageManifest, error) {
	if err := x.mkdir("rootfs"); err != nil {
		return nil, err
	}
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if n >= x.opts.MaxEntries {
			return nil, fmt.Errorf("%w: more than %d entries", ErrTooLarge, x.opts.MaxEntries)
		}
		if err := x.entry(tr, h); err != nil {
			return nil, err
		}
	}
	if x.manifest == nil {
		return nil, ErrNoManifest
	}
	if !x.rootfs {
		return nil, ErrNoRootfs
	}
	if x.root == nil {
		return x.manifest, nil
	}
	return x.manifest, x.finishDirs()
}

// cleanName normalises a tar entry name, refusing absolute names and "..".
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", unsafeEntry(name, "absolute path")
	}
	if slices.Contains(strings.Split(name, "/"), "..") {
		return "", unsafeEntry(name, `contains ".."`)
	}
	return path.Clean(name), nil
}

func (x *extractor) entry(tr *tar.Reader, h *tar.Header) error {
	name, err := cleanName(h.Name)
	if err != nil {
		return err
	}
	switch {
	case name == "." || h.Typeflag == tar.TypeXGlobalHeader:
		return nil // the top directory itself, or git's pax_global_header
	case name == "manifest":
		if x.manifest != nil {
			return unsafeEntry(h.Name, "second manifest")
		}
		m, data, err := readManifestEntry(tr, h)
		if err != nil {
			return err
		}
		x.manifest = m
		if x.root == nil {
			return nil
		}
		return x.writeFile("manifest", data, 0o644)
	case name != "rootfs" && !strings.HasPrefix(name, "rootfs/"):
		return unsafeEntry(h.Name, "not manifest or rootfs")
	}
	x.rootfs = true
	if err := checkLimits(h, name); err != nil {
		return err
	}

	if h.Typeflag == tar.TypeDir {
		if err := x.parents(h.Name, name); err != nil {
			return err
		}
		if _, ok := x.dirs[name]; !ok {
			if err := x.replace(name); err != nil {
				return err
			}
			if err := x.mkdir(name); err != nil {
				return err
			}
		}
		x.dirs[name] = h // applied after the children are in
		return nil
	}

	if err := x.parents(h.Name, name); err != nil {
		return err
	}
	if _, ok := x.dirs[name]; ok {
		return unsafeEntry(h.Name, "replaces a directory")
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeChar, tar.TypeBlock, tar.TypeFifo, tar.TypeSymlink, tar.TypeLink:
	default:
		return unsafeEntry(h.Name, fmt.Sprintf("unsupported type %q", h.Typeflag))
	}
	if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
		return unsafeEntry(h.Name, "device node")
	}
	if h.Typeflag == tar.TypeLink {
		target, err := cleanName(h.Linkname)
		if err != nil || !x.files[target] {
			return unsafeEntry(h.Name, fmt.Sprintf("hardlink target %q is not a file extracted before it", h.Linkname))
		}
	}
	if h.Typeflag == tar.TypeReg {
		x.total += h.Size
		if x.total > x.opts.MaxBytes {
			return fmt.Errorf("%w: %q takes the contents past %d bytes", ErrTooLarge, h.Name, x.opts.MaxBytes)
		}
	}
	if err := x.replace(name); err != nil {
		return err
	}
	x.files[name] = true
	if x.root == nil {
		return nil
	}

	switch h.Typeflag {
	case tar.TypeReg:
		if err := x.regular(tr, h, name); err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := x.atParent(name, func(fd int, base string) error {
			return unix.Symlinkat(h.Linkname, fd, base)
		}); err != nil {
			return err
		}
	case tar.TypeLink: // shares the target's inode and metadata
		target := path.Clean(h.Linkname)
		tdir, err := x.openDir(path.Dir(target))
		if err != nil {
			return err
		}
		defer unix.Close(tdir)
		return x.atParent(name, func(fd int, base string) error {
			return unix.Linkat(tdir, path.Base(target), fd, base, 0)
		})
	case tar.TypeFifo:
		if err := x.atParent(name, func(fd int, base string) error {
			return unix.Mkfifoat(fd, base, 0o600)
		}); err != nil {
			return err
		}
	}
	return x.attrs(h, name)
}

// checkLimits refuses an entry whose name, link target, owner or sparse
// map breaks the limits every image must keep (see Extract).
func checkLimits(h *tar.Header, name string) error {
	switch {
	case len(h.Name) > MaxPathLen:
		return unsafeEntry(h.Name[:64]+"...", fmt.Sprintf("name longer than %d bytes", MaxPathLen))
	case len(h.Linkname) > MaxPathLen:
		return unsafeEntry(h.Name, fmt.Sprintf("link target longer than %d bytes", MaxPathLen))
	case strings.Count(name, "/") > MaxDepth: // "rootfs/" plus MaxDepth components
		return unsafeEntry(h.Name[:min(len(h.Name), 64)]+"...", fmt.Sprintf("deeper than %d components", MaxDepth))
	case h.Uid < 0 || h.Uid > MaxID:
		return unsafeEntry(h.Name, fmt.Sprintf("uid %d out of range 0-%d", h.Uid, MaxID))
	case h.Gid < 0 || h.Gid > MaxID:
		return unsafeEntry(h.Name, fmt.Sprintf("gid %d out of range 0-%d", h.Gid, MaxID))
	case h.Typeflag == tar.TypeGNUSparse:
		return unsafeEntry(h.Name, "sparse file")
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return unsafeEntry(h.Name, "sparse file")
		}
	}
	return nil
}

// parents makes sure every ancestor of name is a directory this extraction
// created, creating missing ones, so no write ever goes through a symlink.
func (x *extractor) parents(orig, name string) error {
	dir := path.Dir(name)
	if _, ok := x.dirs[dir]; ok {
		return nil
	}
	if x.files[dir] {
		return unsafeEntry(orig, fmt.Sprintf("parent %q is a symlink or file, never written through", dir))
	}
	if err := x.parents(orig, dir); err != nil {
		return err
	}
	return x.mkdir(dir)
}

// replace removes an earlier non-directory at name: later entries win, as
// in tar, and removing first means we never open through an old symlink.
func (x *extractor) replace(name string) error {
	if !x.files[name] || x.root == nil {
		return nil
	}
	delete(x.files, name)
	return x.atParent(name, func(fd int, base string) error { return unix.Unlinkat(fd, base, 0) })
}

func (x *extractor) mkdir(name string) error {
	x.dirs[name] = nil
	if x.root == nil {
		return nil
	}
	return x.atParent(name, func(fd int, base string) error { return unix.Mkdirat(fd, base, 0o700) })
}

func (x *extractor) regular(tr *tar.Reader, h *tar.Header, name string) error {
	f, err := x.create(name, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, tr, h.Size); err != nil {
		return fmt.Errorf("write %q: %w", h.Name, err)
	}
	for k, v := range h.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || !allowedXattr(attr, x.opts.NoChown) {
			continue
		}
		if err := unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set xattr %s on %q: %w", attr, h.Name, err)
		}
	}
	return f.Close()
}

// attrs applies owner, mode and mtime of h to name, in the order that keeps
// setuid bits (chown clears them). Symlinks keep their own mode.
func (x *extractor) attrs(h *tar.Header, name string) error {
	if !x.opts.NoChown {
		if err := x.atParent(name, func(fd int, base string) error {
			return unix.Fchownat(fd, base, h.Uid, h.Gid, unix.AT_SYMLINK_NOFOLLOW)
		}); err != nil {
			return err
		}
	}
	if h.Typeflag != tar.TypeSymlink {
		// Not a symlink, in a directory only this extraction writes:
		// fchmodat, which follows symlinks, changes this very entry.
		mode := uint32(h.Mode) & 0o7777
		if x.opts.NoChown {
			mode &^= unix.S_ISUID | unix.S_ISGID
		}
		if err := x.chmod(name, mode); err != nil {
			return err
		}
	}
	return x.atParent(name, func(fd int, base string) error {
		ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		if h.ModTime.IsZero() {
			ts[0] = unix.NsecToTimespec(time.Unix(0, 0).UnixNano())
			ts[1] = ts[0]
		}
		return unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// atParent runs fn with an fd of name's parent directory and name's last
// component.
func (x *extractor) atParent(name string, fn func(fd int, base string) error) error {
	dir := path.Dir(name)
	if dir != x.parentName || x.parentFD < 0 {
		x.closeParent()
		fd, err := x.openDir(dir)
		if err != nil {
			return err
		}
		x.parentName, x.parentFD = dir, fd
	}
	if err := fn(x.parentFD, path.Base(name)); err != nil {
		return &os.PathError{Op: "extract", Path: name, Err: err}
	}
	return nil
}

func (x *extractor) closeParent() {
	if x.parentFD >= 0 {
		unix.Close(x.parentFD)
		x.parentFD = -1
	}
}

// openDir opens dir, relative to the target, never leaving it and
// following no symlink (extract never writes below one anyway).
func (x *extractor) openDir(dir string) (int, error) {
	fd, err := unix.Openat2(int(x.top.Fd()), dir, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if errors.Is(err, unix.ENOSYS) { // before Linux 5.6: os.Root's slow, safe walk
		var f *os.File
		if f, err = x.root.Open(dir); err == nil {
			fd, err = unix.Dup(int(f.Fd()))
			f.Close()
		}
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// create makes name, a new regular file, and opens it for writing.
func (x *extractor) create(name string, mode uint32) (*os.File, error) {
	var f *os.File
	err := x.atParent(name, func(fd int, base string) error {
		nfd, err := unix.Openat(fd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
		if err == nil {
			f = os.NewFile(uintptr(nfd), name)
		}
		return err
	})
	return f, err
}

func (x *extractor) chmod(name string, mode uint32) error {
	return x.atParent(name, func(fd int, base string) error { return unix.Fchmodat(fd, base, mode, 0) })
}

// finishDirs applies directory headers deepest first, so restrictive modes
// and mtimes are set after the children were written.
func (x *extractor) finishDirs() error {
	names := make([]string, 0, len(x.dirs))
	for n := range x.dirs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range slices.Backward(names) {
		h := x.dirs[n]
		switch {
		case n == ".": // the caller's directory, not ours to change
		case h == nil: // implied by a deeper entry: the usual default
			if err := x.chmod(n, 0o755); err != nil {
				return err
			}
		default:
			if err := x.attrs(h, n); err != nil {
				return err
			}
		}
	}
	return nil
}

func (x *extractor) writeFile(name string, data []byte, mode fs.FileMode) error {
	f, err := x.create(name, uint32(mode))
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
