package kvm

import (
	"slices"
	"strings"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

func TestSize(t *testing.T) {
	const mi = 1 << 20
	tests := []struct {
		name     string
		apps     []podunit.App
		host     int
		mem, cpu int
	}{
		{"no limits: default memory, every host CPU", []podunit.App{{}}, 4, 256 + 256, 4},
		{"memory limit replaces the default", []podunit.App{{Memory: 64 * mi, CPU: 500}}, 4, 256 + 64, 1},
		{"CPU limits add up, rounded up", []podunit.App{{CPU: 1500}, {CPU: 800}}, 4, 256 + 2*256, 3},
		{"at most the host's CPUs", []podunit.App{{CPU: 9000}}, 2, 256 + 256, 2},
		{"one unlimited app lifts the others' limits", []podunit.App{{CPU: 1000}, {}}, 8, 256 + 2*256, 8},
		{"memory rounds up to MiB", []podunit.App{{Memory: mi + 1, CPU: 100}}, 1, 256 + 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mem, cpu := Size(tt.apps, tt.host)
			if mem != tt.mem || cpu != tt.cpu {
				t.Errorf("Size = %d MiB, %d vCPUs; want %d MiB, %d vCPUs", mem, cpu, tt.mem, tt.cpu)
			}
		})
	}
}

func TestKernelCmdline(t *testing.T) {
	tests := []struct {
		name string
		o    pod.RunArgs
		want []string // fields the command line must hold
		err  bool
	}{
		{"quiet, systemd's units in two directories", pod.RunArgs{},
			[]string{"loglevel=0", "systemd.log_level=crit", "SYSTEMD_UNIT_PATH=/etc/systemd/system:/usr/lib/systemd/system", "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu"}, false},
		{"debug", pod.RunArgs{Debug: true}, []string{"systemd.log_level=debug", "SYSTEMD_UNIT_PATH=/etc/systemd/system:/usr/lib/systemd/system"}, false},
		{"hostname", pod.RunArgs{Hostname: "web"}, []string{"systemd.hostname=web"}, false},
		{"hostname with a space", pod.RunArgs{Hostname: "a b"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := kernelCmdline(tt.o)
			if (err != nil) != tt.err {
				t.Fatalf("kernelCmdline: err = %v, want error %t", err, tt.err)
			}
			for _, w := range tt.want {
				if !slices.Contains(strings.Fields(got), w) {
					t.Errorf("kernelCmdline = %q, want %q in it", got, w)
				}
			}
		})
	}
}
