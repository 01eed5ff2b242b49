package registries

import "errors"

var (
	// ErrBadConfig means the registries configuration cannot be used: not
	// TOML, an unknown key, a bad value, a registry named twice.
	ErrBadConfig = errors.New("bad registries configuration")
	// ErrBlocked means the configuration blocks pulls from the registry.
	ErrBlocked = errors.New("registry blocked by the registries configuration")
)
