package mount

import (
	"os"
	"path/filepath"
	"testing"
)

// TestBeneathRefusesSymlinks: a symlink on the way, even one that stays
// below root, is refused, and nothing outside root is made or removed.
func TestBeneathRefusesSymlinks(t *testing.T) {
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "app", "keep"), 0o755)
	tests := []struct {
		name string
		link string // what root/opt is: "" a directory
		ok   bool
	}{
		{"plain", "", true},
		{"symlink out", outside, false},
		{"symlink within", ".", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.link != "" {
				if err := os.Symlink(tt.link, filepath.Join(root, "opt")); err != nil {
					t.Fatal(err)
				}
			}
			f, err := MkdirAllBeneath(root, "opt/app/rootfs")
			if (err == nil) != tt.ok {
				t.Fatalf("MkdirAllBeneath: %v, want ok %v", err, tt.ok)
			}
			if err == nil {
				if err := os.WriteFile(filepath.Join(FDPath(f), "x"), nil, 0o644); err != nil {
					t.Error(err)
				}
				f.Close()
				if _, err := os.Stat(filepath.Join(root, "opt/app/rootfs/x")); err != nil {
					t.Error(err)
				}
			}
			err = RemoveAllBeneath(root, "opt/app")
			if (err == nil) != tt.ok {
				t.Errorf("RemoveAllBeneath: %v, want ok %v", err, tt.ok)
			}
			if _, err := os.Stat(filepath.Join(outside, "app", "keep")); err != nil {
				t.Errorf("outside touched: %v", err)
			}
		})
	}
}
