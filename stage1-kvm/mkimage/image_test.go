package main

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
)

// readCpio returns the names and data of a newc archive's members, up to
// its trailer, and what follows it.
func readCpio(t *testing.T, b []byte) (map[string]string, []byte) {
	t.Helper()
	members := map[string]string{}
	for {
		if len(b) < 110 || string(b[:6]) != "070701" {
			t.Fatalf("bad newc header at %q", b[:min(len(b), 16)])
		}
		field := func(i int) int {
			n, err := strconv.ParseUint(string(b[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return int(n)
		}
		size, namesize := field(6), field(11)
		name := string(b[110 : 110+namesize-1])
		off := (110 + namesize + 3) &^ 3
		data := string(b[off : off+size])
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			return members, b
		}
		members[name] = data
	}
}

func TestWriteInitramfs(t *testing.T) {
	var img bytes.Buffer
	tw := tar.NewWriter(&img)
	for _, f := range []struct {
		name, data, link string
		typ              byte
	}{
		{name: "manifest", data: "{}", typ: tar.TypeReg},
		{name: "rootfs/usr/", typ: tar.TypeDir},
		{name: "rootfs/usr/lib/", typ: tar.TypeDir},
		{name: "rootfs/usr/lib/systemd", data: "ELF", typ: tar.TypeReg},
		{name: "rootfs/usr/lib/hook", link: "/skiff/run", typ: tar.TypeSymlink},
		{name: "rootfs/usrx", data: "not usr", typ: tar.TypeReg},
		{name: "rootfs/etc/os-release", data: "ID=x", typ: tar.TypeReg},
		{name: "rootfs/skiff/run", data: "run", typ: tar.TypeReg},
		{name: "rootfs/skiff/stage2", data: "stage2", typ: tar.TypeReg},
		{name: "rootfs/skiff/hook", link: "run", typ: tar.TypeSymlink},
	} {
		h := &tar.Header{Name: f.name, Typeflag: f.typ, Linkname: f.link, Mode: 0o755, Size: int64(len(f.data))}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(f.data))
	}
	tw.Close()
	base := filepath.Join(t.TempDir(), "base.cpio")
	if err := os.WriteFile(base, []byte("BASE"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := writeInitramfs(&out, base, &img); err != nil {
		t.Fatal(err)
	}
	b := out.Bytes()
	if !bytes.HasPrefix(b, []byte("BASE")) {
		t.Fatalf("initramfs does not start with the base archive: %q", b[:8])
	}
	got, rest := readCpio(t, b[4:])
	want := map[string]string{
		"sysroot": "", "sysroot/skiff": "", "sysroot.list": "usr\nskiff/run\nskiff/stage2\n",
		"sysroot/usr": "", "sysroot/usr/lib": "", "sysroot/usr/lib/systemd": "ELF",
		"sysroot/usr/lib/hook": "/skiff/run", "sysroot/skiff/run": "run", "sysroot/skiff/stage2": "stage2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("sysroot archive = %q\nwant %q", got, want)
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes after the trailer", len(rest))
	}
}
