package nspawn

import (
	"errors"

	"github.com/skiffpod/skiff/pkg/pod"
)

// The stage1 ABI's errors (pkg/pod), under this package's name.
var (
	ErrUsage      = pod.ErrUsage
	ErrNotRunning = pod.ErrNotRunning // the pod has no live init process
	ErrNoApp      = pod.ErrNoApp
)

// ErrNoPodCgroups means an app sandbox has no v1 cgroups of its own in the
// pod (booted where the hierarchies are read-only, or by an older stage1):
// its added apps cannot have memory or cpu limits.
var ErrNoPodCgroups = errors.New("the pod has no cgroups for the limits of added apps (cgroup v1)")
