package build

import "errors"

var (
	// ErrSpec is a spec file or flag that says something build cannot do.
	ErrSpec = errors.New("bad spec")
	// ErrMissingLibrary is a library a program needs that is in no
	// directory the loader would search in the image.
	ErrMissingLibrary = errors.New("missing library")
	// ErrApt is apt failing to resolve or download a package.
	ErrApt = errors.New("apt")
	// ErrOutput is an output that cannot be written as asked.
	ErrOutput = errors.New("bad output")

	errNotRegular = errors.New("no longer a regular file")
)
