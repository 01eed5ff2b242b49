package authfile

import "errors"

var (
	// ErrBadFile means an auth file is not the docker-style JSON it should
	// be: not JSON, duplicate keys, or an "auth" that is not base64 of
	// user:password.
	ErrBadFile = errors.New("bad auth file")
	// ErrBadRegistry means a registry is not HOST[:PORT].
	ErrBadRegistry = errors.New("not a registry (want HOST[:PORT])")
	// ErrNotLoggedIn means logout found no entry for the registry.
	ErrNotLoggedIn = errors.New("not logged in")
)
