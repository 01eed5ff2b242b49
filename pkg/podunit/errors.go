package podunit

import "errors"

// ErrUsage is a bad command line or hook invocation; entrypoints exit 254.
var ErrUsage = errors.New("usage")

// ErrTooManyApps means a pod has more than MaxApps apps.
var ErrTooManyApps = errors.New("too many apps in one pod")
