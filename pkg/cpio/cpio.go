// Package cpio writes "newc" cpio archives, the format the Linux kernel
// unpacks into its initramfs. Archives can be concatenated: the kernel
// unpacks each in turn into the same tree.
package cpio

import (
	"fmt"
	"io"
)

// File type bits of Entry.Mode.
const (
	ModeDir     = 0o040000
	ModeFile    = 0o100000
	ModeChar    = 0o020000
	ModeSymlink = 0o120000
)

// Entry is one archive member. A symlink's Data is its target.
type Entry struct {
	Name                 string
	Mode                 uint32
	RdevMajor, RdevMinor uint32
	Data                 []byte
}

// Write writes entries as one newc archive, trailer included. Parent
// directories must come before what they hold.
func Write(w io.Writer, entries []Entry) error {
	entries = append(entries, Entry{Name: "TRAILER!!!"})
	for i, e := range entries {
		nlink := 1
		if e.Mode&0o170000 == ModeDir {
			nlink = 2
		}
		// ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
		// rdevmajor, rdevminor, namesize, check
		hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			i+1, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.RdevMajor, e.RdevMinor, len(e.Name)+1, 0)
		if _, err := io.WriteString(w, hdr+e.Name+"\x00"+pad(len(hdr)+len(e.Name)+1)); err != nil {
			return err
		}
		if _, err := w.Write(e.Data); err != nil {
			return err
		}
		if _, err := io.WriteString(w, pad(len(e.Data))); err != nil {
			return err
		}
	}
	return nil
}

// pad returns the NULs that align n bytes to 4.
func pad(n int) string { return "\x00\x00\x00"[:(4-n%4)%4] }
