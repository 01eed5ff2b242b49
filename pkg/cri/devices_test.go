package cri

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHostDevices(t *testing.T) {
	devs, err := hostDevices("/dev")
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, d := range devs {
		found[d.Path] = true
		if d.Type != "c" && d.Type != "b" {
			t.Errorf("%s: type %q", d.Path, d.Type)
		}
	}
	if !found["/dev/null"] {
		t.Errorf("no /dev/null among %d devices", len(devs))
	}
	for _, p := range []string{"/dev/ptmx", "/dev/console", "/dev/pts/ptmx"} {
		if found[p] {
			t.Errorf("%s listed: the app has its own", p)
		}
	}
	// Not a device, or through a symlink: not listed.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	os.Symlink("/dev/null", filepath.Join(dir, "null"))
	if devs, err := hostDevices(dir); err != nil || len(devs) != 0 {
		t.Errorf("hostDevices of a dir without nodes = %v, %v", devs, err)
	}
}
