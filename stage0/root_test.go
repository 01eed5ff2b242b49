package main

import "testing"

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
