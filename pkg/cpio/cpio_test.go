package cpio

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, []Entry{
		{Name: "dev", Mode: ModeDir | 0o755},
		{Name: "dev/console", Mode: ModeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "init", Mode: ModeFile | 0o755, Data: []byte("#!x")},
		{Name: "sh", Mode: ModeSymlink | 0o777, Data: []byte("init")},
	})
	if err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	// newc: magic, then ino mode uid gid nlink mtime filesize devmajor
	// devminor rdevmajor rdevminor namesize check as 8 hex digits each.
	hdr := func(fields ...int) string {
		s := "070701"
		for _, f := range fields {
			s += fmt.Sprintf("%08x", f)
		}
		return s
	}
	want := []string{
		hdr(1, 0o40755, 0, 0, 2, 0, 0, 0, 0, 0, 0, 4, 0) + "dev\x00\x00\x00",
		hdr(2, 0o20600, 0, 0, 1, 0, 0, 0, 0, 5, 1, 12, 0) + "dev/console\x00\x00\x00",
		hdr(3, 0o100755, 0, 0, 1, 0, 3, 0, 0, 0, 0, 5, 0) + "init\x00\x00#!x\x00",
		hdr(4, 0o120777, 0, 0, 1, 0, 4, 0, 0, 0, 0, 3, 0) + "sh\x00\x00\x00\x00init",
		hdr(5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0) + "TRAILER!!!\x00\x00\x00\x00",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("archive lacks %q", w)
		}
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d not 4-aligned", buf.Len())
	}
}
