package main

import "testing"

// Failures before anything privileged happens still exit with the named code.
func TestRunFailures(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"bogus"},
		{"run"},
		{"run", "--bundle=/nonexistent"},
		{"run", "--no-such-flag"},
		{"exec", "--bundle=/nonexistent"},
		{"exec", "--bundle=/nonexistent", "--", "true"},
	} {
		if got := run(args); got != exitFailure {
			t.Errorf("run(%q) = %d, want %d", args, got, exitFailure)
		}
	}
}
