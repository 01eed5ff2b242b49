package appspec

import "errors"

var (
	// ErrUnknownUser means a user or group name is not in the image's
	// /etc/passwd or /etc/group.
	ErrUnknownUser = errors.New("unknown user or group")
	// ErrBadID means a uid or gid is out of the range skiff allows.
	ErrBadID = errors.New("id out of range")
	// ErrNoVolume means a mount names a volume the pod does not have.
	ErrNoVolume = errors.New("no such volume in the pod")
	// ErrIsolator means an isolator's value cannot be honoured.
	ErrIsolator = errors.New("unsupported isolator value")
)
