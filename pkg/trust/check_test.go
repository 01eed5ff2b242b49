package trust

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	e := newKey(t, "check", 0, 0)
	pub, fp := string(armored(t, e)), fingerprint(e)
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // dir is trustedkeys/root.d
		want  string
	}{
		{"clean", func(t *testing.T, dir string) {}, ""},
		{"group-writable key", func(t *testing.T, dir string) { os.Chmod(filepath.Join(dir, fp), 0o664) }, "lets others write it"},
		{"symlinked key", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, fp))
			os.Symlink("/tmp/elsewhere", filepath.Join(dir, fp))
		}, "neither a directory nor a key file"},
		{"garbage key", func(t *testing.T, dir string) { os.WriteFile(filepath.Join(dir, "0123abcd"), []byte("junk"), 0o644) }, "0123abcd"},
		{"misnamed key", func(t *testing.T, dir string) { os.Rename(filepath.Join(dir, fp), filepath.Join(dir, "abc")) }, "named other than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := t.TempDir()
			ks := Open(cfg)
			if _, err := ks.AddRoot(strings.NewReader(pub)); err != nil {
				t.Fatal(err)
			}
			tt.setup(t, filepath.Join(cfg, "trustedkeys", "root.d"))
			probs, err := ks.Check()
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(probs, "\n")
			if (tt.want == "") != (len(probs) == 0) || !strings.Contains(got, tt.want) {
				t.Errorf("problems:\n%s\nwant one with %q", got, tt.want)
			}
		})
	}
	if probs, err := Open(filepath.Join(t.TempDir(), "none")).Check(); err != nil || len(probs) != 0 {
		t.Errorf("missing keystore: %v, %v", probs, err)
	}
}
