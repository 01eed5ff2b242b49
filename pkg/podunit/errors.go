package podunit

import "errors"

// ErrUsage is a bad command line or hook invocation; entrypoints exit 254.
var ErrUsage = errors.New("usage")
