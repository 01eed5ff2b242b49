package kvm

import (
	"testing"

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
