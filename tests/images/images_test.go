package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema"
)

// imagesDir is where `make images` puts its output, seen from this package.
const imagesDir = "../../bin/images"

func TestManifestTemplates(t *testing.T) {
	for _, name := range []string{"busybox", "probe", "probe-layered", "redis"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(name, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			var m schema.ImageManifest
			data = bytes.ReplaceAll(data, []byte("@VERSION@"), []byte("1.0.0"))
			data = bytes.ReplaceAll(data, []byte("@BUSYBOX_ID@"), []byte("sha512-0123"))
			if err := m.UnmarshalJSON(data); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			if got, want := m.Name.String(), "skiff.local/"+name; got != want {
				t.Errorf("name = %q, want %q", got, want)
			}
		})
	}
}

// entry is what the test checks of one tar header.
type entry struct {
	typ      byte
	uid, gid int
}

func TestBuiltImages(t *testing.T) {
	keyFile, err := os.Open(filepath.Join(imagesDir, "test-key.asc"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("no built images: run `make images` first")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer keyFile.Close()
	keyring, err := openpgp.ReadArmoredKeyRing(keyFile)
	if err != nil {
		t.Fatalf("read test key: %v", err)
	}
	tests := []struct {
		name string
		want map[string]entry // paths that must be in the image
	}{
		{"busybox", map[string]entry{
			"rootfs/bin/busybox": {tar.TypeReg, 0, 0},
			"rootfs/bin/sh":      {tar.TypeSymlink, 0, 0},
			"rootfs/etc/passwd":  {tar.TypeReg, 0, 0},
			"rootfs/home/user":   {tar.TypeDir, 1000, 1000},
		}},
		{"probe", map[string]entry{
			"rootfs/probe":      {tar.TypeReg, 0, 0},
			"rootfs/bin/sh":     {tar.TypeSymlink, 0, 0},
			"rootfs/home/user":  {tar.TypeDir, 1000, 1000},
			"rootfs/etc/passwd": {tar.TypeReg, 0, 0},
		}},
		{"probe-layered", map[string]entry{
			"rootfs/probe": {tar.TypeReg, 0, 0},
		}},
		{"redis", map[string]entry{
			"rootfs/usr/bin/redis-server":                      {tar.TypeReg, 0, 0},
			"rootfs/lib64/ld-linux-x86-64.so.2":                {tar.TypeSymlink, 0, 0},
			"rootfs/lib/x86_64-linux-gnu/libc.so.6":            {tar.TypeReg, 0, 0},
			"rootfs/usr/lib/x86_64-linux-gnu/libjemalloc.so.2": {tar.TypeReg, 0, 0},
			"rootfs/var/lib/redis":                             {tar.TypeDir, 101, 101},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			aci := filepath.Join(imagesDir, tt.name+".aci")
			m, got := readACI(t, aci)
			if m.Name.String() != "skiff.local/"+tt.name {
				t.Errorf("manifest name = %q", m.Name)
			}
			if len(m.Dependencies) == 0 && got["rootfs/"+m.App.Exec[0][1:]].typ == 0 {
				t.Errorf("exec %q is not in the rootfs", m.App.Exec[0])
			}
			for path, want := range tt.want {
				if got[path] != want {
					t.Errorf("%s = %+v, want %+v", path, got[path], want)
				}
			}
			for _, d := range m.Dependencies {
				if want := imageID(t, filepath.Join(imagesDir, strings.TrimPrefix(d.ImageName.String(), "skiff.local/")+".aci")); d.ImageID.String() != want {
					t.Errorf("dependency %s: imageID %s, want %s", d.ImageName, d.ImageID, want)
				}
			}
			checkSignature(t, keyring, aci)
		})
	}
}

// readACI checks the ACI layout: manifest first, everything else under rootfs/,
// fixed mtimes; it returns the manifest and the entries.
func readACI(t *testing.T, path string) (*schema.ImageManifest, map[string]entry) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var m schema.ImageManifest
	entries := map[string]entry{}
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i == 0 && h.Name == "manifest":
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.UnmarshalJSON(data); err != nil {
				t.Fatalf("manifest: %v", err)
			}
		case i == 0:
			t.Fatalf("first entry is %q, want manifest", h.Name)
		case !strings.HasPrefix(h.Name, "rootfs/"):
			t.Errorf("entry %q is outside rootfs/", h.Name)
		}
		if h.ModTime.Unix() != 0 {
			t.Errorf("%s: mtime %v, want 0 for reproducible images", h.Name, h.ModTime)
		}
		entries[filepath.Clean(h.Name)] = entry{h.Typeflag, h.Uid, h.Gid}
	}
	return &m, entries
}

// imageID is the appc image ID of an ACI: the sha512 of the uncompressed tar.
func imageID(t *testing.T, aci string) string {
	t.Helper()
	f, err := os.Open(aci)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New()
	if _, err := io.Copy(h, zr); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("sha512-%x", h.Sum(nil))
}

func checkSignature(t *testing.T, keyring openpgp.KeyRing, aci string) {
	t.Helper()
	signed, err := os.Open(aci)
	if err != nil {
		t.Fatal(err)
	}
	defer signed.Close()
	sig, err := os.Open(aci + ".asc")
	if err != nil {
		t.Fatal(err)
	}
	defer sig.Close()
	if _, err := openpgp.CheckArmoredDetachedSignature(keyring, signed, sig, nil); err != nil {
		t.Errorf("verify %s.asc: %v", aci, err)
	}
}
