package oci

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// zstdMaxMemory bounds what a zstd layer may make the decoder allocate.
const zstdMaxMemory = 256 << 20

// LayerReader is the uncompressed tar of one layer. Read returns io.EOF
// only after the blob matched its digest and size and the tar matched its
// DiffID; any mismatch is an error wrapping ErrDigestMismatch instead.
// A consumer (a tar reader stops at the end-of-archive marker) calls
// Finish after it is done: a nil Finish is the proof the bytes it used
// were the layer's.
type LayerReader struct {
	diffID digest.Digest
	blob   *verifier // nil when the blob has no digest of its own (docker-archive)
	tar    *verifier
	dec    io.Closer
	body   io.Closer
	drain  io.Reader // the compressed stream, read to its end by Finish
}

// OpenLayer opens layer i of img for reading.
func (img *Image) OpenLayer(ctx context.Context, i int) (*LayerReader, error) {
	return img.OpenLayerTee(ctx, i, nil)
}

// OpenLayerTee is OpenLayer that also copies the compressed blob, as read,
// to blob (when not nil): the store keeps it for image push and export.
// The copy is the layer's only once Finish returned nil.
func (img *Image) OpenLayerTee(ctx context.Context, i int, blob io.Writer) (*LayerReader, error) {
	if i < 0 || i >= len(img.Layers) {
		return nil, fmt.Errorf("open layer %d: image has %d layers", i, len(img.Layers))
	}
	l := img.Layers[i]
	body, err := img.src.open(ctx, l.Blob)
	if err != nil {
		return nil, fmt.Errorf("open layer %s: %w", l.DiffID, err)
	}
	lr, err := newLayerReader(body, l, blob)
	if err != nil {
		body.Close()
		return nil, fmt.Errorf("open layer %s: %w", l.DiffID, err)
	}
	return lr, nil
}

func newLayerReader(body io.ReadCloser, l Layer, blob io.Writer) (*LayerReader, error) {
	lr := &LayerReader{body: body, diffID: l.DiffID}
	var r io.Reader = body
	if l.Blob.Digest != "" {
		v, err := newVerifier(body, l.Blob.Digest, l.Blob.Size)
		if err != nil {
			return nil, err
		}
		lr.blob, r = v, v
	} else {
		r = io.LimitReader(body, l.Blob.Size) // the archive entry's own bound
	}
	if blob != nil {
		r = io.TeeReader(r, blob)
	}
	lr.drain = r
	br := bufio.NewReader(r)
	mt := l.Blob.MediaType
	if mt == MediaTypeDockerLayer { // docker-archive layers: whatever `save` wrote
		mt = sniff(br)
	}
	var plain io.Reader
	switch mt {
	case ocispec.MediaTypeImageLayer, MediaTypeDockerLayer:
		plain = br
	case ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		lr.dec, plain = zr, zr
	case ocispec.MediaTypeImageLayerZstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxMemory(zstdMaxMemory), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		lr.dec, plain = zr.IOReadCloser(), zr
	default:
		return nil, fmt.Errorf("%w: layer %q", ErrMediaType, mt)
	}
	v, err := newVerifier(plain, l.DiffID, -1)
	if err != nil {
		return nil, err
	}
	lr.tar = v
	return lr, nil
}

// sniff tells a docker-archive layer's compression by its magic bytes.
func sniff(br *bufio.Reader) string {
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return MediaTypeDockerLayerGzip
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd
	}
	return MediaTypeDockerLayer
}

// Read reads the uncompressed tar.
func (lr *LayerReader) Read(p []byte) (int, error) {
	n, err := lr.tar.Read(p)
	if err == io.EOF {
		// The tar matched its DiffID; the blob must match too, trailing
		// bytes after the compressed stream included.
		if ferr := lr.finishBlob(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

func (lr *LayerReader) finishBlob() error {
	if _, err := io.Copy(io.Discard, lr.drain); err != nil {
		return err
	}
	return nil
}

// Finish reads the rest of the layer and returns nil only if all of it
// matched: the blob its digest and size, the tar its DiffID.
func (lr *LayerReader) Finish() error {
	if _, err := io.Copy(io.Discard, lr); err != nil {
		return fmt.Errorf("verify layer %s: %w", lr.diffID, err)
	}
	return nil
}

// Close releases the layer's stream.
func (lr *LayerReader) Close() error {
	if lr.dec != nil {
		lr.dec.Close()
	}
	return lr.body.Close()
}
