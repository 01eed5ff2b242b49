package simplesign

import "errors"

var (
	// ErrBadPayload means a signature's payload is not a valid atomic
	// container signature, or does not name the image asked for.
	ErrBadPayload = errors.New("signature does not match the image")
	// ErrBadConfig means a registries.d file could not be used.
	ErrBadConfig = errors.New("bad registries.d configuration")
	// ErrNoSignature means the lookaside holds no signature for the image.
	ErrNoSignature = errors.New("no signature")
)
