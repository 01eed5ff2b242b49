package main

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeBzImage wraps payload in the setup header fields extractVmlinux reads.
func fakeBzImage(payload []byte, version uint16) []byte {
	const setupSects = 3
	img := make([]byte, (setupSects+1)*512+100)
	img[0x1f1] = setupSects
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x206:], version)
	binary.LittleEndian.PutUint32(img[0x248:], 100) // payload offset past the setup
	binary.LittleEndian.PutUint32(img[0x24c:], uint32(len(payload)))
	return append(img, payload...)
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return append(buf.Bytes(), 1, 2, 3, 4) // the kernel appends its size
}

func TestExtractVmlinux(t *testing.T) {
	elf := []byte("\x7fELF and the rest of a kernel")
	tests := []struct {
		name    string
		img     []byte
		want    []byte
		wantErr error
	}{
		{"gzip", fakeBzImage(gzipped(elf), 0x20f), elf, nil},
		{"old boot protocol", fakeBzImage(gzipped(elf), 0x207), nil, errNotBzImage},
		{"no HdrS", make([]byte, 4096), nil, errNotBzImage},
		{"truncated", fakeBzImage(gzipped(elf), 0x20f)[:2100], nil, errNotBzImage},
		{"unknown compression", fakeBzImage([]byte("BZh91AY&SY"), 0x20f), nil, errCompression},
		{"not ELF inside", fakeBzImage(gzipped([]byte("MZ")), 0x20f), nil, errNotBzImage},
	}
	if _, err := exec.LookPath("xz"); err == nil {
		// The kernel's own flags: BCJ x86 filter, crc32.
		cmd := exec.Command("xz", "-c", "--format=xz", "--check=crc32", "--x86", "--lzma2=dict=1MiB")
		cmd.Stdin = bytes.NewReader(elf)
		xzed, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name    string
			img     []byte
			want    []byte
			wantErr error
		}{"xz with BCJ", fakeBzImage(append(xzed, 1, 2, 3, 4), 0x20f), elf, nil})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := extractVmlinux(tt.img)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// writeModule writes a minimal ELF64 file whose only section is .modinfo
// (plus the section-name table), which is all modDepends reads.
func writeModule(t *testing.T, path, depends string) {
	t.Helper()
	modinfo := []byte("license=GPL\x00depends=" + depends + "\x00")
	shstr := []byte("\x00.modinfo\x00.shstrtab\x00")
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	le.PutUint16(hdr[16:], 1)  // ET_REL
	le.PutUint16(hdr[18:], 62) // EM_X86_64
	le.PutUint32(hdr[20:], 1)
	shoff := 64 + len(modinfo) + len(shstr)
	le.PutUint64(hdr[40:], uint64(shoff))
	le.PutUint16(hdr[52:], 64) // ehsize
	le.PutUint16(hdr[58:], 64) // shentsize
	le.PutUint16(hdr[60:], 3)  // shnum
	le.PutUint16(hdr[62:], 2)  // shstrndx
	b.Write(hdr)
	b.Write(modinfo)
	b.Write(shstr)
	section := func(name, typ uint32, off, size int) {
		sh := make([]byte, 64)
		le.PutUint32(sh[0:], name)
		le.PutUint32(sh[4:], typ)
		le.PutUint64(sh[24:], uint64(off))
		le.PutUint64(sh[32:], uint64(size))
		le.PutUint64(sh[48:], 1)
		b.Write(sh)
	}
	section(0, 0, 0, 0)
	section(1, 1, 64, len(modinfo))             // .modinfo, PROGBITS
	section(10, 3, 64+len(modinfo), len(shstr)) // .shstrtab, STRTAB
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadOrder(t *testing.T) {
	dir := t.TempDir()
	// The 9p chain from Debian 6.1, with dependencies listed out of order.
	for name, deps := range map[string]string{
		"kernel/drivers/virtio/virtio_ring.ko": "",
		"kernel/drivers/virtio/virtio.ko":      "virtio_ring",
		"kernel/drivers/virtio/virtio_mmio.ko": "virtio,virtio_ring",
		"kernel/fs/netfs/netfs.ko":             "",
		"kernel/fs/fscache/fscache.ko":         "netfs",
		"kernel/net/9p/9pnet.ko":               "",
		"kernel/net/9p/9pnet_virtio.ko":        "virtio_ring,9pnet,virtio",
		"kernel/fs/9p/9p.ko":                   "9pnet,netfs,fscache",
		"kernel/x/dash-name.ko":                "",
		"kernel/x/cycle_a.ko":                  "cycle_b",
		"kernel/x/cycle_b.ko":                  "cycle_a",
	} {
		writeModule(t, filepath.Join(dir, name), deps)
	}
	tests := []struct {
		roots   string
		want    string
		wantErr bool
	}{
		{"virtio_mmio,9pnet_virtio,9p", "virtio_ring virtio virtio_mmio 9pnet 9pnet_virtio netfs fscache 9p", false},
		{"9p", "9pnet netfs fscache 9p", false},
		{"dash_name", "dash_name", false},
		{"nosuch", "", true},
		{"cycle_a", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.roots, func(t *testing.T) {
			mods, err := loadOrder(dir, strings.Split(tt.roots, ","))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tt.wantErr)
			}
			var got []string
			for _, m := range mods {
				got = append(got, m.name)
			}
			if want := strings.Fields(tt.want); !slices.Equal(got, want) {
				t.Errorf("order = %v, want %v", got, want)
			}
		})
	}
}
