package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
	"github.com/skiffpod/skiff/pkg/aci/acitest"
)

// zeroBomb returns, as a stream, a gzipped ACI with one file of size zero
// bytes: a few hundred KiB per hundred MiB declared.
func zeroBomb(size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestSpeed)
		tw := tar.NewWriter(zw)
		m := acitest.Manifest("example.com/bomb")
		tw.WriteHeader(&tar.Header{Name: "manifest", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(m))})
		tw.Write([]byte(m))
		tw.WriteHeader(&tar.Header{Name: "rootfs/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
		_, err := io.CopyN(tw, zeros{}, size)
		if err == nil {
			err = tw.Close()
		}
		if err == nil {
			err = zw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// onTmpfs opens a store on a fresh tmpfs of the given size.
func onTmpfs(t *testing.T, size string) *Store {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs: run as root")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	s, err := Open(filepath.Join(dir, "data"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestImportBounded(t *testing.T) {
	tests := []struct {
		name   string
		fs     string // tmpfs size
		fill   int64  // bytes written to the tmpfs first
		data   func() io.Reader
		naming string
	}{
		// 256 MiB of zeros, 250 KiB gzipped: more than 100:1.
		{"zip bomb", "2g", 0, func() io.Reader { return zeroBomb(256 << 20) }, "times its size"},
		// Declares 700 MiB where (1 GiB - 51 MiB margin) / 2 = 486 MiB fit.
		{"bigger than free space", "1g", 0, func() io.Reader { return zeroBomb(700 << 20) }, "free space"},
		// 2 MiB free, less than the margin of 64 MiB / 20.
		{"no space at all", "64m", 62 << 20, func() io.Reader {
			return bytes.NewReader(acitest.Image(t, "example.com/small", map[string]string{"f": "x"}))
		}, "kept free"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := onTmpfs(t, tt.fs)
			if tt.fill > 0 {
				if err := os.WriteFile(filepath.Join(s.TmpDir(), "fill"), make([]byte, tt.fill), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_, err := s.Import(ctx, tt.data(), ImportOptions{})
			if !errors.Is(err, aci.ErrTooLarge) || !strings.Contains(err.Error(), tt.naming) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("got %v, want %v naming %q", err, aci.ErrTooLarge, tt.naming)
			}
			t.Logf("%v after %v", err, time.Since(start))
			var st unix.Statfs_t
			unix.Statfs(s.TmpDir(), &st)
			if used := int64(st.Blocks-st.Bfree)*st.Bsize - tt.fill; used > 80<<20 {
				t.Errorf("%d MiB left in the store's filesystem", used>>20)
			}
		})
	}
}
