package podunit

import "github.com/skiffpod/skiff/pkg/pod"

// ErrUsage is a bad command line or hook invocation; entrypoints exit
// pod.ExitFailure.
var ErrUsage = pod.ErrUsage
