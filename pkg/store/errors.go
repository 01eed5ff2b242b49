package store

import "errors"

var (
	// ErrNotFound means no stored image matches the reference.
	ErrNotFound = errors.New("image not found")
	// ErrAmbiguous means an ID prefix or name matches several images.
	ErrAmbiguous = errors.New("ambiguous image reference")
	// ErrBadRef means a reference is malformed (e.g. an ID prefix too short).
	ErrBadRef = errors.New("bad image reference")
	// ErrNameMismatch means an imported image is not named as expected.
	ErrNameMismatch = errors.New("image name does not match")
	// ErrCorrupt means a stored blob no longer hashes to its ID.
	ErrCorrupt = errors.New("corrupt image blob")
	// ErrMissingDependency means a dependency is not in the store.
	ErrMissingDependency = errors.New("missing dependency")
	// ErrInUse means a pod still uses the image.
	ErrInUse = errors.New("image in use")
	// ErrDependencyCycle means images depend on each other in a loop.
	ErrDependencyCycle = errors.New("dependency cycle")
)
