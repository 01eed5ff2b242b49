package forward

import "errors"

var (
	// ErrNotLoopback: a stream named a guest address that is not a
	// loopback address (the guest side connects to nothing else).
	ErrNotLoopback = errors.New("not a loopback address")
	// ErrHeaderTooLong: a stream's first line was longer than maxHeader.
	ErrHeaderTooLong = errors.New("longer than the limit")
	// ErrBadSocket: a stream named a socket that is not one name in the
	// guest side's socket directory, or the guest side has none.
	ErrBadSocket = errors.New("not a socket of the socket directory")
)
