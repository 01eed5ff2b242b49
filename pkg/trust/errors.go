package trust

import "errors"

var (
	// ErrUntrusted means no key trusted for the image name made the
	// signature, or the key that made it is expired or revoked.
	ErrUntrusted = errors.New("signature not made by a trusted key")
	// ErrBadSignature means the signature is malformed or does not match
	// the image bytes.
	ErrBadSignature = errors.New("bad signature")
	// ErrNoSignature means there was no signature to check.
	ErrNoSignature = errors.New("no signature")
	// ErrKeyNotFound means the key to remove is not in the keystore.
	ErrKeyNotFound = errors.New("key not found")
	// ErrBadKey means the key to add is unreadable, revoked or cannot sign.
	ErrBadKey = errors.New("unusable key")
)
