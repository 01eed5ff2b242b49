package store

import (
	"fmt"
	"io"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
)

// How much an import may write (docs/images-safety.md). An image is stored
// as its uncompressed tar and later rendered as a tree of about the same
// size on the same filesystem, so its uncompressed size may use at most
// half of the space free beyond a margin kept for everyone else (1/20 of
// the filesystem). And it may not decompress to more
// than MaxRatio times the compressed bytes read so far, beyond RatioSlack:
// real images compress 2-10:1; a bomb of zeros compresses 1000:1 (gzip)
// and far more (xz), and would otherwise write all of it before failing.
const (
	FreeMarginDivisor = 20
	MaxRatio          = 100
	RatioSlack        = 64 << 20
)

// importLimit lowers want to what the filesystem of the store can take.
// fromSpace reports that free space, not want, set the limit.
func (s *Store) importLimit(want int64) (limit int64, fromSpace bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(s.TmpDir(), &st); err != nil {
		return 0, false, fmt.Errorf("free space of the store: %w", err)
	}
	avail := int64(st.Bavail) * st.Bsize
	margin := int64(st.Blocks) * st.Bsize / FreeMarginDivisor
	limit = (avail - margin) / 2
	if limit <= 0 {
		return 0, true, fmt.Errorf("%w: %w: %d KiB free, less than the %d KiB kept free",
			aci.ErrTooLarge, unix.ENOSPC, avail>>10, margin>>10)
	}
	return min(limit, want), limit < want, nil
}

// countReader counts the bytes read through it.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// ratioReader fails once what came out of a decompressor exceeds RatioSlack
// and MaxRatio times what went in.
type ratioReader struct {
	r   io.Reader
	in  *countReader
	out int64
}

func (r *ratioReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.out += int64(n)
	if r.out > RatioSlack && r.out > MaxRatio*r.in.n {
		return n, &ratioError{in: r.in.n}
	}
	return n, err
}

// ratioError is ratioReader's: aci.ErrTooLarge, but not for lack of space.
type ratioError struct{ in int64 }

func (e *ratioError) Error() string {
	return fmt.Sprintf("%v: decompresses to more than %d times its size (%d compressed bytes read so far)", aci.ErrTooLarge, MaxRatio, e.in)
}

func (e *ratioError) Is(target error) bool { return target == aci.ErrTooLarge }
