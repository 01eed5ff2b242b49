package main

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWantsPIDNamespace(t *testing.T) {
	withPID := &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}}}}
	for _, tc := range []struct {
		name string
		s    *specs.Spec
		in   string // envInPIDNamespace
		want bool
	}{
		{"no linux", &specs.Spec{}, "", false},
		{"mount only", &specs.Spec{Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{{Type: specs.MountNamespace}}}}, "", false},
		{"pid", withPID, "", true},
		{"already in it", withPID, "1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envInPIDNamespace, tc.in)
			if got := wantsPIDNamespace(tc.s); got != tc.want {
				t.Errorf("got %t, want %t", got, tc.want)
			}
		})
	}
}
