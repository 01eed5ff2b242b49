package mount

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/userns"
)

func TestOverlayAndUnmountAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount (run as root, as make test does)")
	}
	dir := t.TempDir()
	lower := filepath.Join(dir, "lower")
	if err := os.MkdirAll(lower, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "f"), []byte("lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(dir, "pod", "rootfs")
	if err := Overlay([]string{lower}, filepath.Join(dir, "pod", "upper"), filepath.Join(dir, "pod", "work"), target); err != nil {
		t.Fatal(err)
	}
	hostVol := filepath.Join(dir, "hostvol")
	os.MkdirAll(hostVol, 0o755)
	os.WriteFile(filepath.Join(hostVol, "keep"), []byte("x"), 0o644)
	volTarget := filepath.Join(target, "vol")
	os.MkdirAll(volTarget, 0o755)
	if err := Bind(hostVol, volTarget, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(volTarget, "x"), nil, 0o644); err == nil {
		t.Errorf("write to read-only bind succeeded")
	}
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("upper"), 0o644); err != nil {
		t.Fatal(err)
	}
	ms, err := Under(filepath.Join(dir, "pod"))
	if err != nil || len(ms) != 2 {
		t.Fatalf("Under = %v, %v; want 2 mounts", ms, err)
	}
	if err := UnmountAll(filepath.Join(dir, "pod")); err != nil {
		t.Fatal(err)
	}
	if ms, _ := Under(dir); len(ms) != 0 {
		t.Errorf("mounts left: %v", ms)
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "f")); string(b) != "lower" {
		t.Errorf("lower changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(hostVol, "keep")); err != nil {
		t.Errorf("host volume damaged: %v", err)
	}
}

func TestOverlayIDMapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount (run as root, as make test does)")
	}
	dir := t.TempDir()
	lower := filepath.Join(dir, "lower")
	mustMkdir(t, lower)
	mustWrite(t, filepath.Join(lower, "f"))
	r := userns.Range{Base: 0x10000000, Size: userns.BlockSize}
	ns, err := r.NS()
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	target, upper := filepath.Join(dir, "rootfs"), filepath.Join(dir, "upper")
	if err := OverlayIDMapped([]string{lower}, upper, filepath.Join(dir, "work"), target, ns, int(r.Base)); err != nil {
		t.Fatal(err)
	}
	defer UnmountAll(target)
	for _, p := range []string{target, filepath.Join(target, "f")} {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != r.Base || st.Gid != r.Base {
			t.Errorf("%s: owner %d:%d, want %d:%d (the pod's root)", p, st.Uid, st.Gid, r.Base, r.Base)
		}
	}
	// A copy-up keeps the mapped owner in the upper; the lower is unchanged.
	if err := os.WriteFile(filepath.Join(target, "f"), []byte("pod"), 0o644); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(upper, "f"), &st); err != nil || st.Uid != r.Base {
		t.Errorf("upper/f: owner %d, err %v; want %d", st.Uid, err, r.Base)
	}
	if err := unix.Lstat(filepath.Join(lower, "f"), &st); err != nil || st.Uid != 0 {
		t.Errorf("lower/f: owner %d, err %v; want 0 (unchanged)", st.Uid, err)
	}
	if ms, _ := Under(dir); len(ms) != 1 {
		t.Errorf("mounts under the dir: %v, want the overlay only (no idmapped layer left attached)", ms)
	}
}

// BenchmarkOverlay and BenchmarkOverlayIDMapped are the per-pod cost of
// --private-users' mounts (docs/user-namespaces.md): a namespace and an
// idmapped overlay of two layers, against a plain one; unmounts included.
func BenchmarkOverlay(b *testing.B)         { benchOverlay(b, false) }
func BenchmarkOverlayIDMapped(b *testing.B) { benchOverlay(b, true) }

func benchOverlay(b *testing.B, mapped bool) {
	if os.Geteuid() != 0 {
		b.Skip("needs root to mount")
	}
	dir := b.TempDir()
	lowers := []string{filepath.Join(dir, "l1"), filepath.Join(dir, "l2")}
	for _, l := range lowers {
		if err := os.Mkdir(l, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	r := userns.Range{Base: 0x10000000, Size: userns.BlockSize}
	for i := 0; b.Loop(); i++ {
		d := filepath.Join(dir, strconv.Itoa(i))
		target := filepath.Join(d, "rootfs")
		var err error
		if mapped {
			var ns *os.File
			if ns, err = r.NS(); err == nil {
				err = OverlayIDMapped(lowers, filepath.Join(d, "upper"), filepath.Join(d, "work"), target, ns, int(r.Base))
				ns.Close()
			}
		} else {
			err = Overlay(lowers, filepath.Join(d, "upper"), filepath.Join(d, "work"), target)
		}
		if err == nil {
			err = UnmountAll(target)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func TestOverlaySupported(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount (run as root, as make test does)")
	}
	dir := t.TempDir()
	if err := OverlaySupported(dir); err != nil {
		t.Fatalf("OverlaySupported(%s) = %v, want nil (overlayfs on the test's filesystem)", dir, err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %v in %s", left, dir)
	}
	if ms, _ := Under(dir); len(ms) != 0 {
		t.Errorf("the probe left mounts: %v", ms)
	}
}
