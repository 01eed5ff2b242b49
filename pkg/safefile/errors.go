package safefile

import "errors"

var (
	// ErrNotRegular means the file is a FIFO, device, socket, directory or
	// (where symlinks are refused) a symlink, not a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSymlink means a path component was a symlink where none is followed.
	ErrSymlink = errors.New("is a symlink, not followed")
	// ErrTooLarge means the file exceeds the size limit the caller gave.
	ErrTooLarge = errors.New("file too large")
)
