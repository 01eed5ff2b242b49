package policy

import "errors"

var (
	// ErrRefused means the policy does not let an image run.
	ErrRefused = errors.New("refused by the run policy")
	// ErrBadPolicy means the policy file is malformed.
	ErrBadPolicy = errors.New("bad policy")
)
