package agent

import (
	"errors"
	"maps"
	"slices"
)

// ErrLineTooLong means a message on the wire was longer than MaxLine.
var ErrLineTooLong = errors.New("message longer than the limit")

// ErrBadMessage means a line on the wire was no message: not JSON, or
// longer than MaxLine.
var ErrBadMessage = errors.New("bad message")

// ErrSessionEnded means a Session's host ended it before the reply.
var ErrSessionEnded = errors.New("session ended")

// ErrUnknownOp means the peer does not know the requested operation.
var ErrUnknownOp = errors.New("unknown operation")

// ErrCode names, on the wire, the sentinel error an OpError reply stands
// for, so that the other side checks it with errors.Is, never by its text.
type ErrCode string

// CodeUnknownOp is ErrUnknownOp's code, known to every Codes.
const CodeUnknownOp ErrCode = "unknown-op"

// Codes maps the codes a protocol user sends to the sentinels they stand
// for; both ends hold the same table. (A table rather than a fixed list:
// the guest init must not link the stage1 ABI's packages to name them.)
type Codes map[ErrCode]error

// Failure is the OpError reply for err: its text, and the code of the
// sentinel it wraps, if any.
func (c Codes) Failure(err error) Message {
	m := Message{Op: OpError, Error: err.Error()}
	if errors.Is(err, ErrUnknownOp) {
		m.ErrCode = CodeUnknownOp
		return m
	}
	for _, code := range slices.Sorted(maps.Keys(c)) {
		if errors.Is(err, c[code]) {
			m.ErrCode = code
			break
		}
	}
	return m
}

// Err returns the error an OpError reply carries: its text, wrapping the
// sentinel its code names (an unknown code, from a newer peer, wraps
// nothing). It returns nil for any other message.
func (c Codes) Err(m Message) error {
	if m.Op != OpError {
		return nil
	}
	e := &remoteError{text: m.Error, sentinel: c[m.ErrCode]}
	if m.ErrCode == CodeUnknownOp {
		e.sentinel = ErrUnknownOp
	}
	return e
}

// remoteError is an error the peer reported.
type remoteError struct {
	text     string
	sentinel error // nil when the code named none
}

func (e *remoteError) Error() string { return e.text }
func (e *remoteError) Unwrap() error { return e.sentinel }
