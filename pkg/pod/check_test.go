package pod

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, p *Pod)
		want   string // in the one problem reported; "" for none
		repair bool   // whether --repair fixes it
	}{
		{"clean", func(*testing.T, *Pod) {}, "", false},
		{"pod dir 0711", func(t *testing.T, p *Pod) { chmod(t, p.Path(), 0o711) }, "mode 0711, want 0710", true},
		{"world-writable pid", func(t *testing.T, p *Pod) { write(t, p.File(PidFile), 0o666) }, "pid: mode 0666", true},
		{"readable stage1", func(t *testing.T, p *Pod) { chmod(t, p.File(Stage1Dir), 0o755) }, "mode 0755, want 0700", true},
		{"abandoned prepare", func(t *testing.T, p *Pod) { p.Unlock() }, "abandoned prepare pod", false},
		{"stray file", func(t *testing.T, p *Pod) { write(t, filepath.Join(filepath.Dir(p.Path()), "junk"), 0o600) }, "stray entry", false},
		{"no manifest", func(t *testing.T, p *Pod) {
			if err := p.Transition(Prepared); err != nil {
				t.Fatal(err)
			}
			os.Remove(p.File(ManifestFile))
		}, "pod manifest missing", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, err := Create(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Unlock()
			if err := p.Transition(Preparing); err != nil {
				t.Fatal(err)
			}
			write(t, p.File(ManifestFile), 0o640)
			for _, d := range []string{Stage1Dir, OverlayDir} {
				if err := os.Mkdir(p.File(d), 0o700); err != nil {
					t.Fatal(err)
				}
				chmod(t, p.File(d), 0o700)
			}
			tt.damage(t, p)
			for _, repair := range []bool{false, true} {
				probs, err := Check(dir, CheckOptions{Repair: repair})
				if err != nil {
					t.Fatal(err)
				}
				if tt.want == "" {
					if len(probs) != 0 {
						t.Fatalf("problems in a clean pod: %v", probs)
					}
					return
				}
				if len(probs) != 1 || !strings.Contains(probs[0].What, tt.want) || probs[0].Repaired != (repair && tt.repair) {
					t.Fatalf("repair %v: problems %+v, want one with %q", repair, probs, tt.want)
				}
			}
			if probs, _ := Check(dir, CheckOptions{}); tt.repair && len(probs) != 0 {
				t.Errorf("after repair: %v", probs)
			}
		})
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("1"), mode); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Transition(Preparing); err != nil {
		t.Fatal(err)
	}
	if err := p.Transition(Prepared); err != nil {
		t.Fatal(err)
	}
	p.Unlock()
	// What the first release left: 0711 dirs, 0644 files, open stage1/.
	for _, d := range []string{Stage1Dir, OverlayDir} {
		if err := os.Mkdir(p.File(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(t, p.File(ManifestFile), 0o644)
	for _, d := range []string{PodsDir(dir), filepath.Dir(p.Path()), p.Path()} {
		chmod(t, d, 0o711)
	}
	if probs, _ := Check(dir, CheckOptions{}); len(probs) == 0 {
		t.Fatal("Check found nothing wrong in a first-release pod")
	}
	if err := Migrate(dir); err != nil {
		t.Fatal(err)
	}
	if probs, err := Check(dir, CheckOptions{}); err != nil || len(probs) != 0 {
		t.Errorf("after migration: %v, %v", probs, err)
	}
}
