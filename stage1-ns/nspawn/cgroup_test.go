package nspawn

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
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

// TestSetupTracking runs setupTracking against a fake cgroup root: the pod
// gets skiff/<uuid> in each tracking hierarchy present, the caller joins
// it, and removeCgroups removes it with what was made below it.
func TestSetupTracking(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name        string
		hierarchies []string
	}{
		{"hybrid", []string{"systemd", "unified"}},
		{"name=systemd only", []string{"systemd"}},
		{"none", nil},
	}
	old := cgroupRoot
	defer func() { cgroupRoot = old }()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cgroupRoot = t.TempDir()
			for _, h := range tt.hierarchies {
				os.MkdirAll(filepath.Join(cgroupRoot, h), 0o755)
				os.WriteFile(filepath.Join(cgroupRoot, h, "cgroup.procs"), nil, 0o644)
			}
			if got := trackingHierarchies(); !slices.Equal(got, tt.hierarchies) {
				t.Fatalf("trackingHierarchies() = %v, want %v", got, tt.hierarchies)
			}
			leave, err := setupTracking(log, "u1")
			if err != nil {
				t.Fatal(err)
			}
			leave()
			for _, h := range tt.hierarchies {
				dir := filepath.Join(cgroupRoot, h, "skiff", "u1")
				if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); string(procs) != "0" {
					t.Errorf("%s: cgroup.procs = %q: caller did not join", h, procs)
				}
				// What nspawn and the pod's systemd make; on cgroupfs a
				// cgroup's files go with it.
				os.Remove(filepath.Join(dir, "cgroup.procs"))
				os.MkdirAll(filepath.Join(dir, "payload", "system.slice", "app.service"), 0o755)
				os.MkdirAll(filepath.Join(dir, "supervisor"), 0o755)
			}
			if err := removeCgroups("u1"); err != nil {
				t.Fatal(err)
			}
			if left, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", "skiff", "u1")); len(left) > 0 {
				t.Errorf("left: %v", left)
			}
		})
	}
}

// TestGCRefusesBadUUID: gc's uuid names cgroups whose processes it kills;
// one that is not a UUID is refused before anything is touched.
func TestGCRefusesBadUUID(t *testing.T) {
	old := cgroupRoot
	defer func() { cgroupRoot = old }()
	cgroupRoot = t.TempDir()
	os.MkdirAll(filepath.Join(cgroupRoot, "systemd"), 0o755)
	os.WriteFile(filepath.Join(cgroupRoot, "systemd", "cgroup.procs"), nil, 0o644)
	for _, u := range []string{"../..", "", "x/../../y"} {
		err := Isolator{}.GC(slog.New(slog.DiscardHandler), pod.GCArgs{UUID: u})
		if !errors.Is(err, ErrUsage) {
			t.Errorf("GC(%q) = %v, want a usage error", u, err)
		}
	}
}

// TestAddAppCgroups runs addAppCgroups and removeAppCgroups against a fake
// cgroup root and stage1 rootfs: the added app's cgroups below the pod's,
// with its limits, linked where stage2 joins them; refused without the
// pod's cgroups mounted in the pod; gone again after removal.
func TestAddAppCgroups(t *testing.T) {
	old := cgroupRoot
	defer func() { cgroupRoot = old }()
	cgroupRoot = t.TempDir()
	rootfs := t.TempDir()
	root, err := os.OpenRoot(rootfs)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	app := podunit.App{Name: "web", Memory: 15 << 20, CPU: 500}
	if err := addAppCgroups(root, "u1", app); !errors.Is(err, ErrNoPodCgroups) {
		t.Fatalf("without the pod's cgroups in the pod: %v, want ErrNoPodCgroups", err)
	}
	for _, ctrl := range v1Controllers {
		os.MkdirAll(filepath.Join(rootfs, podCgroupMount, ctrl), 0o755)
		os.MkdirAll(podCgroup(ctrl, "u1"), 0o755)
	}
	if err := addAppCgroups(root, "u1", app); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{
		"memory/skiff/u1/web/memory.limit_in_bytes": "15728640",
		"cpu/skiff/u1/web/cpu.cfs_quota_us":         "50000",
	} {
		if b, err := os.ReadFile(filepath.Join(cgroupRoot, f)); err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %s", f, b, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(rootfs, podunit.CgroupDir, "web", "memory")); err != nil || l != podCgroupMount+"/memory/web" {
		t.Errorf("link = %q, %v", l, err)
	}
	// A cgroupfs directory goes with its files; a fake one must be emptied.
	for _, ctrl := range v1Controllers {
		ents, _ := os.ReadDir(filepath.Join(podCgroup(ctrl, "u1"), "web"))
		for _, e := range ents {
			os.Remove(filepath.Join(podCgroup(ctrl, "u1"), "web", e.Name()))
		}
	}
	if err := removeAppCgroups(root, "u1", "web"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(rootfs, podunit.CgroupDir, "web"), filepath.Join(cgroupRoot, "cpu/skiff/u1/web")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
