package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveAll: every kind of mount a pod dir can hold is detached, never
// deleted through; nothing a symlink points at is touched.
func TestRemoveAll(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount (run as root, as make test does)")
	}
	for _, tc := range []struct {
		name  string
		mount func(t *testing.T, pod, host string) // makes mounts below pod
	}{
		{"no mounts", func(t *testing.T, pod, host string) {}},
		{"overlay with a bind inside (a pod's stage1 and app)", func(t *testing.T, pod, host string) {
			lower := filepath.Join(filepath.Dir(host), "lower")
			mustMkdir(t, lower)
			mustWrite(t, filepath.Join(lower, "f"))
			rootfs := filepath.Join(pod, "stage1", "rootfs")
			if err := Overlay([]string{lower}, filepath.Join(pod, "upper"), filepath.Join(pod, "work"), rootfs); err != nil {
				t.Fatal(err)
			}
			app := filepath.Join(rootfs, "opt", "app")
			mustMkdir(t, app)
			if err := Bind(host, app, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"the pod dir itself", func(t *testing.T, pod, host string) {
			if err := Bind(host, pod, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"a file", func(t *testing.T, pod, host string) {
			f := filepath.Join(pod, "file")
			mustWrite(t, f)
			if err := Bind(filepath.Join(host, "keep"), f, false); err != nil {
				t.Fatal(err)
			}
		}},
		{"stacked", func(t *testing.T, pod, host string) {
			d := filepath.Join(pod, "d")
			mustMkdir(t, d)
			for range 3 {
				if err := Bind(host, d, false); err != nil {
					t.Fatal(err)
				}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			host := filepath.Join(dir, "host")
			mustMkdir(t, host)
			mustWrite(t, filepath.Join(host, "keep"))
			pod := filepath.Join(dir, "pods", "pod")
			mustMkdir(t, filepath.Join(pod, "a", "b"))
			mustWrite(t, filepath.Join(pod, "a", "b", "f"))
			if err := os.Symlink(host, filepath.Join(pod, "a", "link")); err != nil {
				t.Fatal(err)
			}
			tc.mount(t, pod, host)
			t.Cleanup(func() { UnmountAll(dir) })
			if err := RemoveAll(pod); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(pod); !os.IsNotExist(err) {
				t.Errorf("pod dir left: %v", err)
			}
			if ms, _ := Under(dir); len(ms) != 0 {
				t.Errorf("mounts left: %v", ms)
			}
			if _, err := os.Stat(filepath.Join(host, "keep")); err != nil {
				t.Errorf("removed through a mount or link: %v", err)
			}
			if err := RemoveAll(pod); err != nil {
				t.Errorf("again: %v", err)
			}
		})
	}
}

func mustMkdir(t *testing.T, d string) {
	t.Helper()
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, f string) {
	t.Helper()
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
