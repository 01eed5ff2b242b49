// Package testhook lets end-to-end tests pause a skiff process at a named
// critical point, so that a race between two commands can be forced
// instead of hoped for. Every hook is inert unless its environment
// variable is set; docs/testing.md lists the hooks.
package testhook

import (
	"io"
	"os"
)

// EnvPrefix starts the variable that arms a hook: SKIFF_TEST_HOOK_<NAME>.
const EnvPrefix = "SKIFF_TEST_HOOK_"

// Hook names, one per critical point (see docs/testing.md).
const (
	ImageRm = "IMAGE_RM" // image rm: image resolved, before it is removed
	GCPod   = "GC_POD"   // gc: while it holds its look at one pod
	StopPod = "STOP_POD" // stop: pod found running, before stage1's stop
)

// Wait pauses at the point name when SKIFF_TEST_HOOK_<name> names a FIFO:
// opening it for reading blocks until the test opens it for writing (so
// the test knows the point is reached), then Wait reads until the test
// closes its end. Without the variable, or when the FIFO cannot be
// opened, Wait returns at once.
func Wait(name string) {
	path := os.Getenv(EnvPrefix + name)
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(io.Discard, f)
}
