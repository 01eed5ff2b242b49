package perm

import "errors"

// ErrSymlink means a path that should be a file or directory is a symlink.
var ErrSymlink = errors.New("is a symlink")
