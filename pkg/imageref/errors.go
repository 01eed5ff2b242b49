package imageref

import "errors"

var (
	// ErrNotOCI means the string is not an OCI/Docker reference at all: it
	// has none of the transport prefixes, so it stays an appc name.
	ErrNotOCI = errors.New("not an OCI image reference")
	// ErrInvalid means the string has an OCI transport prefix but the rest
	// breaks the naming rules; the wrapping error says which.
	ErrInvalid = errors.New("invalid image reference")
)
