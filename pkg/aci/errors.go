package aci

import (
	"errors"
	"fmt"
)

var (
	// ErrUnknownFormat means the input is neither a tar nor a gzip, bzip2
	// or xz stream.
	ErrUnknownFormat = errors.New("unknown image format")
	// ErrNoManifest means the tar has no manifest entry.
	ErrNoManifest = errors.New("image has no manifest")
	// ErrNoRootfs means the tar has no rootfs directory.
	ErrNoRootfs = errors.New("image has no rootfs")
	// ErrBadManifest means the manifest is not a valid appc image manifest.
	ErrBadManifest = errors.New("invalid image manifest")
	// ErrUnsafeEntry means a tar entry could escape or damage the target
	// tree; the error is an *UnsafeEntryError naming the entry.
	ErrUnsafeEntry = errors.New("unsafe tar entry")
	// ErrTooLarge means the image exceeds ExtractOptions limits.
	ErrTooLarge = errors.New("image too large")
)

// UnsafeEntryError names a rejected tar entry and why it was rejected.
type UnsafeEntryError struct {
	Name   string
	Reason string
}

func (e *UnsafeEntryError) Error() string {
	return fmt.Sprintf("unsafe tar entry %q: %s", e.Name, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafeEntry) true.
func (e *UnsafeEntryError) Is(target error) bool { return target == ErrUnsafeEntry }

func unsafeEntry(name, reason string) error { return &UnsafeEntryError{Name: name, Reason: reason} }
