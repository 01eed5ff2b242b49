package cgstat

import (
	"io/fs"
	"syscall"
)

// statIno returns fi's inode number and its allocated 512-byte blocks.
func statIno(fi fs.FileInfo) (ino, blocks uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino, uint64(st.Blocks)
	}
	return 0, uint64(fi.Size()+511) / 512
}
