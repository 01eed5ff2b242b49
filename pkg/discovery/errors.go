package discovery

import "errors"

var (
	// ErrNotFound means no page on the name's path offered an ac-discovery
	// template that could be rendered for the asked labels.
	ErrNotFound = errors.New("no ac-discovery template found")
	// ErrNoKeys means no page on the name's path offered a public key for it.
	ErrNoKeys = errors.New("no ac-discovery-pubkeys found")
	// ErrScheme means a URL was neither https nor (when allowed) http.
	ErrScheme = errors.New("not an https URL (plain http needs --insecure-options=http)")
	// ErrBadRef means an image reference could not be parsed.
	ErrBadRef = errors.New("bad image reference")
)
