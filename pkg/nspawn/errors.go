package nspawn

import "errors"

var (
	// ErrUsage is a bad command line; the entrypoint exits 254.
	ErrUsage = errors.New("usage")
	// ErrNotRunning means the pod has no live init process.
	ErrNotRunning = errors.New("pod is not running")
	// ErrNoApp means the pod has no running app of that name.
	ErrNoApp = errors.New("no such running app")
)
