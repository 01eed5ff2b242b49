package layer

import (
	"errors"
	"fmt"
)

var (
	// ErrUnsafeEntry means a tar entry could escape or damage the layer
	// tree; the error is an *UnsafeEntryError naming the entry.
	ErrUnsafeEntry = errors.New("unsafe layer entry")
	// ErrTooLarge means the layer exceeds the Options limits.
	ErrTooLarge = errors.New("layer too large")
)

// UnsafeEntryError names a refused tar entry and why it was refused.
type UnsafeEntryError struct {
	Name   string
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("unsafe layer entry %q: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafeEntry) true.
func (e *UnsafeEntryError) Is(target error) bool { return target == ErrUnsafeEntry }

func unsafeEntry(name, reason string) error { return &UnsafeEntryError{Name: name, Reason: reason} }
