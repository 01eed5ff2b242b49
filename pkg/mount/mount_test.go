package mount

import (
	"os"
	"path/filepath"
	"testing"
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
