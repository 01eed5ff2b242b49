package launch

import "errors"

var (
	// ErrNotFound means the command to exec is not in the app's PATH.
	ErrNotFound = errors.New("executable not found")
	// ErrUnsupported means the spec asks for something stage2 cannot do.
	ErrUnsupported = errors.New("unsupported in spec")
)
