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
// data and may point anywhere. Modes (with setuid/setgid/sticky), numeric
// owners, mtimes, hardlinks and the "SCHILY.xattr." PAX records of regular
// files are kept.
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
		root:  root,
		opts:  opts,
		dirs:  map[string]*tar.Header{".": nil},
		files: map[string]bool{},
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
		if err := x.root.Symlink(h.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink: // shares the target's inode and metadata
		return x.root.Link(path.Clean(h.Linkname), name)
	case tar.TypeFifo:
		if err := x.atParent(name, func(fd int, base string) error {
			return unix.Mkfifoat(fd, base, 0o600)
		}); err != nil {
			return err
		}
	}
	return x.attrs(h, name)
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
	return x.root.Remove(name)
}

func (x *extractor) mkdir(name string) error {
	x.dirs[name] = nil
	if x.root == nil {
		return nil
	}
	if err := x.root.Mkdir(name, 0o700); err != nil {
		return err
	}
	return nil
}

func (x *extractor) regular(tr *tar.Reader, h *tar.Header, name string) error {
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(f, tr, h.Size); err != nil {
		return fmt.Errorf("write %q: %w", h.Name, err)
	}
	for k, v := range h.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok || x.opts.NoChown && strings.HasPrefix(attr, "security.") {
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
		if err := x.root.Lchown(name, h.Uid, h.Gid); err != nil {
			return err
		}
	}
	if h.Typeflag != tar.TypeSymlink {
		mode := h.FileInfo().Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if x.opts.NoChown {
			mode &^= fs.ModeSetuid | fs.ModeSetgid
		}
		if err := x.root.Chmod(name, mode); err != nil {
			return err
		}
	}
	// os.Root has no Lchtimes: set the time on the parent's fd, no-follow.
	return x.atParent(name, func(fd int, base string) error {
		ts := []unix.Timespec{unix.NsecToTimespec(h.ModTime.UnixNano()), unix.NsecToTimespec(h.ModTime.UnixNano())}
		if h.ModTime.IsZero() {
			ts[0] = unix.NsecToTimespec(time.Unix(0, 0).UnixNano())
			ts[1] = ts[0]
		}
		return unix.UtimesNanoAt(fd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
}

// atParent runs fn with an fd of name's parent directory, opened through
// the root, and name's last component, for the *at calls os.Root lacks.
func (x *extractor) atParent(name string, fn func(fd int, base string) error) error {
	d, err := x.root.Open(path.Dir(name))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := fn(int(d.Fd()), path.Base(name)); err != nil {
		return &os.PathError{Op: "at", Path: name, Err: err}
	}
	return nil
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
			if err := x.root.Chmod(n, 0o755); err != nil {
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
	f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
