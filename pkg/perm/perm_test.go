package perm

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestClasses(t *testing.T) {
	tests := []struct {
		name   string
		umask  int
		shared bool
		dir    bool
		want   os.FileMode
	}{
		{"shared dir, umask 077", 0o077, true, true, SharedDir},
		{"shared dir, umask 0", 0, true, true, SharedDir},
		{"private dir, umask 0", 0, false, true, PrivateDir},
		{"shared file, umask 077", 0o077, true, false, SharedFile},
		{"private file, umask 0", 0, false, false, PrivateFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old := syscall.Umask(tt.umask)
			defer syscall.Umask(old)
			p := filepath.Join(t.TempDir(), "x")
			var err error
			switch {
			case tt.dir && tt.shared:
				err = MkdirShared(p)
			case tt.dir:
				err = MkdirPrivate(p)
			default:
				err = WriteFile(p, []byte("x"), tt.shared)
			}
			if err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(p)
			if err != nil || fi.Mode().Perm() != tt.want {
				t.Fatalf("mode = %v, %v; want %04o", fi.Mode(), err, tt.want)
			}
			if d := Differs(p, tt.shared); d != "" {
				t.Errorf("Differs right after creation: %s", d)
			}
			if d := Differs(p, !tt.shared); d == "" {
				t.Errorf("Differs with the other class found nothing")
			}
		})
	}
}

func TestRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	for _, set := range []func(string) error{Shared, Private, Searchable} {
		if err := set(link); err == nil || !strings.Contains(err.Error(), "symlink") {
			t.Errorf("set through a symlink: %v", err)
		}
	}
	if fi, _ := os.Stat(target); fi.Mode().Perm() != 0o644 {
		t.Errorf("target changed through the link: %v", fi.Mode())
	}
	if d := Differs(link, true); d != "is a symlink" {
		t.Errorf("Differs(symlink) = %q", d)
	}
}

func TestSearchable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pod")
	if err := MkdirShared(dir); err != nil {
		t.Fatal(err)
	}
	if d := DiffersSearchable(dir); d == "" {
		t.Errorf("DiffersSearchable of a shared dir found nothing")
	}
	if err := Searchable(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != SearchDir {
		t.Errorf("mode = %v, want %04o", fi.Mode(), SearchDir)
	}
	if d := DiffersSearchable(dir); d != "" {
		t.Errorf("DiffersSearchable right after Searchable: %s", d)
	}
	if d := Differs(dir, true); d == "" {
		t.Errorf("Differs(shared) of a searchable dir found nothing")
	}
	file := filepath.Join(dir, "f")
	os.WriteFile(file, nil, 0o600)
	if err := Searchable(file); err == nil {
		t.Errorf("Searchable of a file: no error")
	}
}
