package launch

import "errors"

var (
	// ErrNotFound means the command to exec is not in the app's PATH.
	ErrNotFound = errors.New("executable not found")
	// ErrUnsupported means the spec asks for something stage2 cannot do.
	ErrUnsupported = errors.New("unsupported in spec")
)

// ErrCapNotHeld means the app asks for a capability that stage2 itself
// does not hold: its stage1 or the host withholds it from the pod.
var ErrCapNotHeld = errors.New("not held by the pod (its stage1 or the host withholds it)")
