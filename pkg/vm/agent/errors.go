package agent

import "errors"

// ErrLineTooLong means a message on the wire was longer than MaxLine.
var ErrLineTooLong = errors.New("message longer than the limit")
