package oci

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Bounds on the JSON documents: real manifests and configs are a few KiB,
// indexes with many platforms tens of KiB. containerd uses 4 MiB too.
const (
	MaxManifestSize = 4 << 20
	MaxConfigSize   = 8 << 20
)

// verifier passes r through while hashing it; it never returns io.EOF
// before the length and digest both matched, so a reader that gets io.EOF
// from it has read exactly the blob that was asked for.
type verifier struct {
	r    io.Reader
	want digest.Digest
	size int64 // -1: unknown, the digest alone decides
	n    int64
	h    hash.Hash
	err  error // sticky: the verdict once reached
}

// newVerifier checks r against want and, when size >= 0, its length.
// Only sha256 is accepted: it is what every registry and layout uses, and
// one algorithm is one less thing to get wrong.
func newVerifier(r io.Reader, want digest.Digest, size int64) (*verifier, error) {
	if err := checkDigest(want); err != nil {
		return nil, err
	}
	return &verifier{r: r, want: want, size: size, h: sha256.New()}, nil
}

func checkDigest(d digest.Digest) error {
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return fmt.Errorf("%w: digest %q is not sha256:<64 hex>", ErrBadJSON, d)
	}
	return nil
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if v.size >= 0 && int64(len(p)) > v.size-v.n+1 {
		p = p[:v.size-v.n+1] // read one byte past the end at most: enough to see a long blob
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.h.Write(p[:n])
	if v.size >= 0 && v.n > v.size {
		v.err = fmt.Errorf("%w: blob %s is longer than its %d bytes", ErrDigestMismatch, v.want, v.size)
		return 0, v.err
	}
	if err == io.EOF {
		v.err = v.verdict()
		return n, v.err
	}
	return n, err
}

func (v *verifier) verdict() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("%w: blob %s is %d bytes, its descriptor says %d (truncated)", ErrDigestMismatch, v.want, v.n, v.size)
	}
	got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
	if got != string(v.want) {
		return fmt.Errorf("%w: blob %s hashes to %s", ErrDigestMismatch, v.want, got)
	}
	return io.EOF
}

// readVerified reads a whole JSON document of at most max bytes and
// checks it against want.
func readVerified(r io.Reader, want digest.Digest, size, max int64) ([]byte, error) {
	if size > max {
		return nil, fmt.Errorf("%w: document %s is %d bytes, more than %d", ErrTooLarge, want, size, max)
	}
	v, err := newVerifier(r, want, size)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(v, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: document %s is more than %d bytes", ErrTooLarge, want, max)
	}
	return b, nil
}

// decodeStrict unmarshals a JSON object into v, refusing what
// encoding/json would silently accept: duplicate keys (the last would
// win, so two readers could see two documents) including keys that differ
// only in case (encoding/json matches those to one field), and trailing
// data.
func decodeStrict(data []byte, v any) error {
	if err := checkDuplicates(data); err != nil {
		return fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%w: %w", ErrBadJSON, err)
	}
	return nil
}

func checkDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := walkValue(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the document")
	}
	return nil
}

// maxJSONDepth bounds nesting; the documents are a few levels deep.
const maxJSONDepth = 64

func walkValue(dec *json.Decoder, depth int) error {
	if depth > maxJSONDepth {
		return fmt.Errorf("nested deeper than %d", maxJSONDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := strings.ToLower(strings.ToUpper(k.(string))) // the folding encoding/json matches with
			if seen[key] {
				return fmt.Errorf("duplicate key %q", k)
			}
			seen[key] = true
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	case json.Delim('['):
		for dec.More() {
			if err := walkValue(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
		return err
	}
	return nil
}
