package main

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUUIDFilePods(t *testing.T) {
	dir := t.TempDir()
	saved := filepath.Join(dir, "saved")
	if err := os.WriteFile(saved, []byte(" 1234abcd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		file  uuidFile
		args  []string
		want  []string
		usage bool // a usage error, else some other error when want is nil
	}{
		{"arguments", "", []string{"a", "b"}, []string{"a", "b"}, false},
		{"file", uuidFile(saved), nil, []string{"1234abcd"}, false},
		{"both", uuidFile(saved), []string{"a"}, nil, true},
		{"neither", "", nil, nil, true},
		{"missing file", uuidFile(filepath.Join(dir, "nope")), nil, nil, false},
		{"empty file", uuidFile(empty), nil, nil, false},
		{"a FIFO: refused, not waited on", uuidFile(fifo), nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.file.pods(tt.args)
			if tt.want != nil {
				if err != nil || !slices.Equal(got, tt.want) {
					t.Errorf("pods(%q) = %q, %v; want %q", tt.args, got, err, tt.want)
				}
				return
			}
			var ue usageError
			if err == nil || errors.As(err, &ue) != tt.usage {
				t.Errorf("pods(%q) = %q, %v; want an error (usage: %v)", tt.args, got, err, tt.usage)
			}
		})
	}
}
