package pod

import "errors"

var (
	ErrNotExist    = errors.New("pod does not exist")
	ErrAmbiguous   = errors.New("ambiguous pod uuid prefix")
	ErrLocked      = errors.New("pod is in use by another process")
	ErrState       = errors.New("pod is in the wrong state")
	ErrNotStage1   = errors.New("not a stage1 image")
	ErrUnsupported = errors.New("stage1 does not support entrypoint")

	// ErrUsage is a bad entrypoint command line; the entrypoint exits
	// ExitFailure.
	ErrUsage = errors.New("usage")
	// ErrNotRunning means a stage1 found no live pod to act on.
	ErrNotRunning = errors.New("pod is not running")
	// ErrNoApp means the pod has no running app of that name.
	ErrNoApp = errors.New("no such running app")
)
