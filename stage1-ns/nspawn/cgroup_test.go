package nspawn

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// TestSetupPids runs setupPids against a fake cgroup root: the pod's pids
// cgroup gets the limit and the caller joins it, or nothing happens.
func TestSetupPids(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name      string
		hierarchy bool
		limit     int64
		want      string // pids.max, "" for no cgroup
	}{
		{"limit", true, 64, "64"},
		{"no limit", true, 0, ""},
		{"no v1 pids hierarchy", false, 64, ""},
	}
	old := cgroupRoot
	defer func() { cgroupRoot = old }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cgroupRoot = t.TempDir()
			if tt.hierarchy {
				os.MkdirAll(filepath.Join(cgroupRoot, "pids"), 0o755)
				os.WriteFile(filepath.Join(cgroupRoot, "pids", "cgroup.procs"), nil, 0o644)
			}
			leave, err := setupPids(log, "u1", tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			leave()
			dir := filepath.Join(cgroupRoot, "pids", "skiff", "u1")
			got, err := os.ReadFile(filepath.Join(dir, "pids.max"))
			if tt.want == "" {
				if err == nil {
					t.Errorf("pids.max written: %q", got)
				}
				return
			}
			if string(got) != tt.want {
				t.Errorf("pids.max = %q, want %q", got, tt.want)
			}
			if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); string(procs) != "0" {
				t.Errorf("cgroup.procs = %q: caller did not join", procs)
			}
		})
	}
}
