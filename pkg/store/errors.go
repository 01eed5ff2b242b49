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
	// ErrBadProvenance means a provenance name is not one skiff knows.
	ErrBadProvenance = errors.New("unknown provenance")
)

var (
	// ErrFormat means the data dir's format file is unreadable or newer
	// than this skiff.
	ErrFormat = errors.New("unsupported store format")
	// ErrRecordMismatch means an image record (the sidecar JSON) says
	// something other than the manifest in the image's blob.
	ErrRecordMismatch = errors.New("image record does not match its blob")
)

var (
	// ErrBadUser means an OCI image's config names a user its own
	// /etc/passwd does not have.
	ErrBadUser = errors.New("unknown user")
	// ErrMissingLayer means a layer an OCI image lists is not in the store.
	ErrMissingLayer = errors.New("missing layer")
	// ErrNotForOCI means an operation exists for ACIs only.
	ErrNotForOCI = errors.New("not for OCI images yet")
	// ErrOnlyOCI means an operation exists for OCI images only.
	ErrOnlyOCI = errors.New("for OCI images only")
	// ErrNoManifest means an OCI image came without a manifest (a
	// docker-archive): it cannot be pushed or exported as it came.
	ErrNoManifest = errors.New("push or export it from its source")
)
