package main

import (
	"slices"
	"testing"
)

func TestExitCodes(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"version", []string{"version"}, exitOK},
		{"unknown command", []string{"frobnicate"}, exitUsage},
		{"unknown flag", []string{"list", "--bogus"}, exitUsage},
		{"missing argument", []string{"status"}, exitUsage},
		{"bad format", []string{"--dir=" + dir, "list", "--format=xml"}, exitUsage},
		{"bad insecure option", []string{"--insecure-options=everything", "version"}, exitUsage},
		{"run without image", []string{"--dir=" + dir, "run"}, exitUsage},
		{"unknown pod", []string{"--dir=" + dir, "status", "0000"}, exitFailure},
		{"stop of an unknown pod", []string{"--dir=" + dir, "stop", "--force", "0000"}, exitFailure},
		{"empty list", []string{"--dir=" + dir, "list"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := run(tt.args); got != tt.want {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
			}
		})
	}
}

// TestInsecureOptions: rkt's run-time options and groups are accepted
// and mean what rkt's do; ondisk is accepted and turns nothing off.
func TestInsecureOptions(t *testing.T) {
	tests := []struct {
		flags   []string
		on, off []string
		run     []string // insecureRun, for the pod manifest
	}{
		{nil, nil, []string{"image", "seccomp"}, nil},
		{[]string{"image,tls"}, []string{"image", "tls"}, []string{"http", "seccomp"}, nil},
		{[]string{"seccomp", "paths"}, []string{"seccomp", "paths"}, []string{"capabilities", "image"}, []string{"paths", "seccomp"}},
		{[]string{"all-run"}, []string{"capabilities", "paths", "seccomp", "ondisk"}, []string{"image", "http"}, []string{"capabilities", "paths", "seccomp"}},
		{[]string{"all-fetch"}, []string{"image", "http", "tls"}, []string{"seccomp"}, nil},
		{[]string{"all"}, []string{"image", "http", "tls", "capabilities", "paths", "seccomp"}, nil, []string{"capabilities", "paths", "seccomp"}},
		{[]string{"ondisk"}, []string{"ondisk"}, []string{"image", "seccomp", "paths", "capabilities"}, nil},
	}
	for _, tt := range tests {
		g := &globals{insecure: tt.flags}
		for _, o := range tt.on {
			if !g.insecureOpt(o) {
				t.Errorf("%q: %s not turned off", tt.flags, o)
			}
		}
		for _, o := range tt.off {
			if g.insecureOpt(o) {
				t.Errorf("%q: %s turned off", tt.flags, o)
			}
		}
		if got := g.insecureRun(); !slices.Equal(got, tt.run) {
			t.Errorf("%q: insecureRun() = %q, want %q", tt.flags, got, tt.run)
		}
	}
	dir := t.TempDir()
	for _, o := range []string{"image,seccomp,capabilities,paths,ondisk,all-run", "all-fetch", "all"} {
		if got := run([]string{"--dir=" + dir, "--insecure-options=" + o, "list"}); got != exitOK {
			t.Errorf("--insecure-options=%s: exit %d, want %d", o, got, exitOK)
		}
	}
}
