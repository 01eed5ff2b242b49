package fetch

import "errors"

var (
	// ErrNotInStore means the pull policy forbade a download and the store
	// has no matching image.
	ErrNotInStore = errors.New("image not in store")
	// ErrMismatch means the image's manifest is not the image that was
	// asked for (another name, or a label that differs).
	ErrMismatch = errors.New("image does not match the reference")
	// ErrInsecureHTTP means a plain http URL was met without InsecureHTTP.
	ErrInsecureHTTP = errors.New("plain http refused (use https, or --insecure-options=http)")
	// ErrUnsupported means the reference names a transport skiff lacks.
	ErrUnsupported = errors.New("unsupported image reference")
	// ErrNotACI means the downloaded or given file is not an ACI.
	ErrNotACI = errors.New("not an ACI")
)
