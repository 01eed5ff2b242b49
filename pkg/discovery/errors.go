package discovery

import "errors"

var (
	// ErrNotFound means no page on the name's path offered an ac-discovery
	// template that could be rendered for the asked labels.
	ErrNotFound = errors.New("no ac-discovery template found")
	// ErrBadRef means an image reference could not be parsed.
	ErrBadRef = errors.New("bad image reference")
)
