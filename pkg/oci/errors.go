package oci

import "errors"

var (
	// ErrDigestMismatch means a blob's bytes do not hash to the digest that
	// named it, or its length differs from its descriptor's size.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrTooLarge means a manifest, index or config is larger than its
	// bound, or a blob longer than its descriptor says.
	ErrTooLarge = errors.New("too large")
	// ErrMediaType means a descriptor or document has a media type skiff
	// does not know; nothing of unknown type is ever interpreted.
	ErrMediaType = errors.New("unsupported media type")
	// ErrBadJSON means a manifest, index or config is not valid JSON, has
	// duplicate keys (also ones differing only in case), or misses a
	// required field.
	ErrBadJSON = errors.New("invalid JSON document")
	// ErrIndexLoop means an index refers to itself, directly or through
	// other indexes, or nests too deep.
	ErrIndexLoop = errors.New("index refers to itself")
	// ErrNoPlatform means no manifest of an index matches the platform.
	ErrNoPlatform = errors.New("no image for the platform")
	// ErrNotFound means the reference, tag or blob is not in the source.
	ErrNotFound = errors.New("not found")
	// ErrRegistry means a registry answered with an error status.
	ErrRegistry = errors.New("registry error")
	// ErrDenied means a registry refused the credentials, or anonymous
	// access (401 or 403).
	ErrDenied = errors.New("access denied")
	// ErrTimeout means a registry stopped answering for longer than the
	// timeout.
	ErrTimeout = errors.New("registry timed out")
	// ErrInsecure means plain http was needed but not allowed.
	ErrInsecure = errors.New("plain http refused (allow it with the insecure http option)")
	// ErrNoCommand means the image config and the overrides give no
	// command to run.
	ErrNoCommand = errors.New("image has no command (no Entrypoint or Cmd; give one)")
)

// ErrBadConfig means a field of the image config cannot be mapped onto an
// app (a relative WorkingDir, a malformed Env, User, port or signal).
var ErrBadConfig = errors.New("invalid image config")
