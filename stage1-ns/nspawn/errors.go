package nspawn

import "github.com/skiffpod/skiff/pkg/pod"

// The stage1 ABI's errors (pkg/pod), under this package's name.
var (
	ErrUsage      = pod.ErrUsage
	ErrNotRunning = pod.ErrNotRunning // the pod has no live init process
	ErrNoApp      = pod.ErrNoApp
)
