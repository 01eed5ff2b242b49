// Package aci reads and writes appc image archives (ACIs): a tar holding a
// JSON "manifest" and a "rootfs" directory, optionally gzip, bzip2 or xz
// compressed. Extraction treats every archive as hostile: all file
// operations go through an os.Root, and entries that could escape the
// target or create device nodes are rejected (see Extract).
package aci

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"encoding/json"
	"fmt"
	"io"

	"github.com/appc/spec/schema"
	"github.com/klauspost/compress/gzip" // the standard library's API, decodes a third faster
	"github.com/ulikunitz/xz"

	"github.com/skiffpod/skiff/pkg/strictjson"
)

// MaxManifestSize bounds the manifest entry; real ones are a few KiB.
const MaxManifestSize = 1 << 20

var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
)

// Decompress returns the uncompressed tar stream of r, detecting gzip,
// bzip2 and xz by their magic bytes; a plain tar is passed through.
// Closing the result does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	// Large reads: the decompressors read through br, 512 bytes would
	// cost a system call per 512 bytes of the file.
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(512)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decompress gzip: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(head, magicBzip2):
		return io.NopCloser(bzip2.NewReader(br)), nil
	case bytes.HasPrefix(head, magicXz):
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("decompress xz: %w", err)
		}
		return io.NopCloser(xr), nil
	case isTar(head):
		return io.NopCloser(br), nil
	}
	return nil, fmt.Errorf("decompress: %w", ErrUnknownFormat)
}

// isTar recognises a ustar/GNU header or the all-zero end of an empty archive.
func isTar(head []byte) bool {
	if len(head) < 512 {
		return false
	}
	if bytes.Equal(head[257:262], []byte("ustar")) {
		return true
	}
	return bytes.Count(head, []byte{0}) == 512
}

// ReadManifest returns the validated manifest of the uncompressed ACI tar
// r, reading only up to the manifest entry.
func ReadManifest(r io.Reader) (*schema.ImageManifest, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("read manifest: %w", ErrNoManifest)
		}
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		if name, err := cleanName(h.Name); err == nil && name == "manifest" {
			m, _, err := readManifestEntry(tr, h)
			return m, err
		}
	}
}

// readManifestEntry parses the manifest entry whose header is h and also
// returns its raw bytes, so Extract can store them unchanged.
func readManifestEntry(r io.Reader, h *tar.Header) (*schema.ImageManifest, []byte, error) {
	if h.Typeflag != tar.TypeReg {
		return nil, nil, unsafeEntry(h.Name, "manifest is not a regular file")
	}
	if h.Size > MaxManifestSize {
		return nil, nil, fmt.Errorf("read manifest: %w: larger than %d bytes", ErrBadManifest, MaxManifestSize)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestSize))
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	m, err := ParseManifest(data)
	return m, data, err
}

// ParseManifest parses and validates an image manifest.
func ParseManifest(data []byte) (*schema.ImageManifest, error) {
	if !json.Valid(data) {
		return nil, fmt.Errorf("parse manifest: %w: not valid JSON", ErrBadManifest)
	}
	var m schema.ImageManifest
	if err := strictjson.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w: %w", ErrBadManifest, err)
	}
	return &m, nil
}
