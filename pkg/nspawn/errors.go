package nspawn

import (
	"errors"

	"github.com/skiffpod/skiff/pkg/podunit"
)

var (
	// ErrUsage is a bad command line; the entrypoint exits 254.
	ErrUsage = podunit.ErrUsage
	// ErrNotRunning means the pod has no live init process.
	ErrNotRunning = errors.New("pod is not running")
	// ErrNoApp means the pod has no running app of that name.
	ErrNoApp = errors.New("no such running app")
)
