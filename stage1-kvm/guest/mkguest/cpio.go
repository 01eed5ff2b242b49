package main

import (
	"fmt"
	"io"
)

const (
	modeDir  = 0o040000
	modeFile = 0o100000
	modeChar = 0o020000
)

type cpioEntry struct {
	name                 string
	mode                 uint32
	rdevMajor, rdevMinor uint32
	data                 []byte
}

// writeCpio writes entries as a "newc" archive, the format the kernel
// unpacks into the initramfs. Parent directories must come first.
func writeCpio(w io.Writer, entries []cpioEntry) error {
	entries = append(entries, cpioEntry{name: "TRAILER!!!"})
	for i, e := range entries {
		nlink := 1
		if e.mode&modeDir != 0 {
			nlink = 2
		}
		// ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
		// rdevmajor, rdevminor, namesize, check
		hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
			i+1, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
		if _, err := io.WriteString(w, hdr+e.name+"\x00"+pad(len(hdr)+len(e.name)+1)); err != nil {
			return err
		}
		if _, err := w.Write(e.data); err != nil {
			return err
		}
		if _, err := io.WriteString(w, pad(len(e.data))); err != nil {
			return err
		}
	}
	return nil
}

// pad returns the NULs that align n bytes to 4.
func pad(n int) string { return "\x00\x00\x00"[:(4-n%4)%4] }
