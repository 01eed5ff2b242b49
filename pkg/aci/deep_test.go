package aci

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/aci/acitest"
	"golang.org/x/sys/unix"
)

// deepImage has a directory chain depth levels deep under rootfs/, each
// level as its own entry holding one file: the shape whose extraction was
// quadratic in depth.
func deepImage(t testing.TB, depth int) []byte {
	es := []acitest.Entry{{Name: "manifest", Body: acitest.Manifest("example.com/deep")}, {Name: "rootfs/"}}
	p := "rootfs/"
	for i := 0; i < depth-1; i++ {
		p += "d/"
		es = append(es, acitest.Entry{Name: p}, acitest.Entry{Name: p + "f", Body: "x"})
	}
	return acitest.Tar(t, es...)
}

func TestExtractDeepIsFast(t *testing.T) {
	img := deepImage(t, MaxDepth)
	root, dir, _ := sandbox(t)
	start := time.Now()
	if _, err := Extract(bytes.NewReader(img), root, ExtractOptions{NoChown: os.Geteuid() != 0}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("extracting %d levels took %v", MaxDepth, d)
	} else {
		t.Logf("extracting %d levels took %v", MaxDepth, d)
	}
	if _, err := os.Stat(dir + "/rootfs/" + strings.Repeat("d/", MaxDepth-1) + "f"); err != nil {
		t.Error(err)
	}
}

func TestExtractXattrs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to set trusted.* xattrs (and to see them): run as root")
	}
	root, dir, _ := sandbox(t)
	img := acitest.Tar(t,
		acitest.Entry{Name: "manifest", Body: acitest.Manifest("example.com/xattrs")},
		acitest.Entry{Name: "rootfs/f", Body: "x", PAX: map[string]string{
			"SCHILY.xattr.user.keep":                "yes",
			"SCHILY.xattr.trusted.overlay.opaque":   "y",
			"SCHILY.xattr.trusted.overlay.redirect": "/etc",
			"SCHILY.xattr.trusted.other":            "no",
			"SCHILY.xattr.security.selinux":         "system_u:object_r:shadow_t:s0",
			"SCHILY.xattr.security.ima":             "\x03\x02",
		}},
	)
	if _, err := Extract(bytes.NewReader(img), root, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	f := dir + "/rootfs/f"
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(f, buf)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if a != "" && a != "security.selinux" || a == "security.selinux" && selinuxFromImage(t, f) {
			got = append(got, a)
		}
	}
	if strings.Join(got, ",") != "user.keep" {
		t.Errorf("xattrs %q, want only user.keep", got)
	}
}

// selinuxFromImage reports whether f's SELinux label is the image's (a
// host with SELinux labels every file itself).
func selinuxFromImage(t *testing.T, f string) bool {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(f, "security.selinux", buf)
	return err == nil && strings.Contains(string(buf[:n]), "shadow_t")
}
