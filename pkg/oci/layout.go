package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// maxSmallFile bounds index.json, oci-layout and manifest.json.
const maxSmallFile = 1 << 20

// files opens the files of a layout directory or an archive by their
// slash-separated name inside it, refusing anything but regular files.
type files interface {
	open(name string) (io.ReadCloser, int64, error)
	close() error
}

// dirFiles is a layout directory; every open is confined to it.
type dirFiles struct{ root *os.Root }

func (d dirFiles) open(name string) (io.ReadCloser, int64, error) {
	// O_NONBLOCK: opening a FIFO must not hang; it is refused below.
	f, err := d.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %v, not a regular file", name, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

func (d dirFiles) close() error { return d.root.Close() }

// tarFiles is an uncompressed tar archive indexed once: every regular
// file's offset and size, so blobs are read in place.
type tarFiles struct {
	f       *os.File
	entries map[string]tarEntry
}

type tarEntry struct {
	off, size int64
	link      string // a symlink's target, resolved inside the archive
}

// maxArchiveEntries bounds the index of an archive.
const maxArchiveEntries = 1 << 16

// countingReader tracks the offset tar.Reader has reached; it passes
// Seek on so tar skips file data without reading it.
type countingReader struct {
	f   *os.File
	off int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.f.Read(p)
	c.off += int64(n)
	return n, err
}

func (c *countingReader) Seek(off int64, whence int) (int64, error) {
	n, err := c.f.Seek(off, whence)
	if err == nil {
		c.off = n
	}
	return n, err
}

func openTarFiles(p string) (*tarFiles, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	t := &tarFiles{f: f, entries: map[string]tarEntry{}}
	if err := t.index(); err != nil {
		f.Close()
		return nil, fmt.Errorf("read archive %s: %w", p, err)
	}
	return t, nil
}

func (t *tarFiles) index() error {
	fi, err := t.f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%v)", fi.Mode().Type())
	}
	head := make([]byte, 4)
	n, _ := t.f.ReadAt(head, 0)
	if head = head[:n]; bytes.HasPrefix(head, []byte{0x1f, 0x8b}) || bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}) || bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X'}) {
		return fmt.Errorf("a compressed file; give the uncompressed tar")
	}
	cr := &countingReader{f: t.f}
	tr := tar.NewReader(cr)
	for n := 0; ; n++ {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("not an uncompressed tar: %w", err)
		}
		if n > maxArchiveEntries {
			return fmt.Errorf("%w: more than %d entries", ErrTooLarge, maxArchiveEntries)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		var e tarEntry
		switch h.Typeflag {
		case tar.TypeReg:
			e = tarEntry{off: cr.off, size: h.Size}
		case tar.TypeSymlink, tar.TypeLink:
			target := h.Linkname
			if h.Typeflag == tar.TypeSymlink {
				target = path.Join(path.Dir(name), target)
			}
			e = tarEntry{link: path.Clean(strings.TrimPrefix(target, "./"))}
		default:
			continue
		}
		if _, dup := t.entries[name]; dup {
			return fmt.Errorf("entry %q appears twice", name)
		}
		t.entries[name] = e
	}
}

func (t *tarFiles) open(name string) (io.ReadCloser, int64, error) {
	for hops := 0; hops < 8; hops++ {
		e, ok := t.entries[path.Clean(name)]
		if !ok {
			return nil, 0, fmt.Errorf("%s: %w", name, ErrNotFound)
		}
		if e.link == "" {
			return io.NopCloser(io.NewSectionReader(t.f, e.off, e.size)), e.size, nil
		}
		name = e.link
	}
	return nil, 0, fmt.Errorf("%s: too many links", name)
}

func (t *tarFiles) close() error { return t.f.Close() }

// layout is an OCI image layout on some files.
type layout struct {
	files files
	tag   string
}

func openLayoutDir(dir, tag string) (*layout, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return newLayout(dirFiles{root}, tag)
}

func openLayoutArchive(file, tag string) (*layout, error) {
	t, err := openTarFiles(file)
	if err != nil {
		return nil, err
	}
	return newLayout(t, tag)
}

func newLayout(fs files, tag string) (*layout, error) {
	l := &layout{files: fs, tag: tag}
	var marker struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := l.readJSON(ocispec.ImageLayoutFile, &marker); err != nil {
		fs.close()
		return nil, fmt.Errorf("not an OCI image layout: %w", err)
	}
	if marker.Version != ocispec.ImageLayoutVersion {
		fs.close()
		return nil, fmt.Errorf("%w: image layout version %q, want %q", ErrMediaType, marker.Version, ocispec.ImageLayoutVersion)
	}
	return l, nil
}

func (l *layout) readFile(name string) ([]byte, error) {
	rc, size, err := l.files.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > maxSmallFile {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrTooLarge, name, size, maxSmallFile)
	}
	return io.ReadAll(io.LimitReader(rc, maxSmallFile))
}

func (l *layout) readJSON(name string, v any) error {
	b, err := l.readFile(name)
	if err != nil {
		return err
	}
	if err := decodeStrict(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func (l *layout) root(context.Context) (ocispec.Descriptor, []byte, error) {
	raw, err := l.readFile("index.json")
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	var idx ocispec.Index
	if err := decodeStrict(raw, &idx); err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("index.json: %w", err)
	}
	if l.tag == "" {
		return ocispec.Descriptor{}, raw, nil
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == l.tag {
			return m, nil, nil
		}
	}
	return ocispec.Descriptor{}, nil, fmt.Errorf("tag %q: %w in the layout", l.tag, ErrNotFound)
}

func (l *layout) open(_ context.Context, d ocispec.Descriptor) (io.ReadCloser, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	rc, _, err := l.files.open(path.Join(ocispec.ImageBlobsDir, d.Digest.Algorithm().String(), d.Digest.Encoded()))
	return rc, err
}

func (l *layout) close() error { return l.files.close() }
