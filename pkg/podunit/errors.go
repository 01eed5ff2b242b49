package podunit

import (
	"errors"

	"github.com/skiffpod/skiff/pkg/pod"
)

// ErrUsage is a bad command line or hook invocation; entrypoints exit
// pod.ExitFailure.
var ErrUsage = pod.ErrUsage

// ErrTooManyApps means a pod has more than MaxApps apps.
var ErrTooManyApps = errors.New("too many apps in one pod")
