package cglimit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func files(t *testing.T, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("0"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func read(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

func TestWriteV1(t *testing.T) {
	tests := []struct {
		name string
		have []string
		ctrl string
		l    Limits
		want map[string]string
	}{
		{"memory and swap", []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes"}, "memory", Limits{Memory: 15 << 20},
			map[string]string{"memory.limit_in_bytes": "15728640", "memory.memsw.limit_in_bytes": "15728640"}},
		{"memory, no swap accounting", []string{"memory.limit_in_bytes"}, "memory", Limits{Memory: 1024},
			map[string]string{"memory.limit_in_bytes": "1024"}},
		{"cpu", []string{"cpu.cfs_period_us", "cpu.cfs_quota_us"}, "cpu", Limits{CPUQuota: 50000, CPUPeriod: 100000},
			map[string]string{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000"}},
		{"nothing asked", []string{"memory.limit_in_bytes"}, "memory", Limits{CPUQuota: 1, CPUPeriod: 2},
			map[string]string{"memory.limit_in_bytes": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := files(t, tt.have...)
			if err := WriteV1(dir, tt.ctrl, tt.l); err != nil {
				t.Fatal(err)
			}
			for f, want := range tt.want {
				if got := read(t, dir, f); got != want {
					t.Errorf("%s = %q, want %q", f, got, want)
				}
			}
		})
	}
}

func TestWriteV2(t *testing.T) {
	dir := files(t, "memory.max", "cpu.max")
	if err := WriteV2(dir, Limits{Memory: 4096, CPUQuota: 25000, CPUPeriod: 100000}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dir, "memory.max"); got != "4096" {
		t.Errorf("memory.max = %q", got)
	}
	if got := read(t, dir, "cpu.max"); got != "25000 100000" {
		t.Errorf("cpu.max = %q", got)
	}
	if err := WriteV2(files(t), Limits{Memory: 1}); !errors.Is(err, ErrNoController) {
		t.Errorf("no memory.max: %v, want ErrNoController", err)
	}
}

func TestParseProcCgroup(t *testing.T) {
	in := "12:memory:/skiff/u1/web\n4:cpu,cpuacct:/skiff/u1/web\n1:name=systemd:/skiff/u1/payload\n0::/skiff/u1/payload/system.slice/skiff-app-web.service\n"
	got := parseProcCgroup(in)
	for k, want := range map[string]string{"memory": "/skiff/u1/web", "cpu": "/skiff/u1/web", "cpuacct": "/skiff/u1/web", "": "/skiff/u1/payload/system.slice/skiff-app-web.service"} {
		if got[k] != want {
			t.Errorf("%q: %q, want %q", k, got[k], want)
		}
	}
}

func TestWriteV2Shares(t *testing.T) {
	dir := files(t, "cpu.weight")
	if err := WriteV2(dir, Limits{CPUShares: 1024}); err != nil {
		t.Fatal(err)
	}
	if got := read(t, dir, "cpu.weight"); got != "39" {
		t.Errorf("cpu.weight for 1024 shares = %q, want 39", got)
	}
}
