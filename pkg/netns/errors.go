package netns

import "errors"

// ErrNotNetns is returned for a path that is not a network namespace file.
var ErrNotNetns = errors.New("not a network namespace")
