package systemdhost

import "errors"

// ErrShutdownTimeout means the host did not power off in time and was killed.
var ErrShutdownTimeout = errors.New("host did not power off")
