package appspec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/safefile"
)

// TestResolveUserHostile: the image's /etc/passwd and /etc/group are the
// image author's; resolving a user must not hang, balloon or accept ids
// the rest of skiff refuses.
func TestResolveUserHostile(t *testing.T) {
	const passwd = "root:x:0:0::/root:/bin/sh\nbig:x:2147483648:0::/:/bin/sh\nweb:x:1000:1000::/:/bin/sh\n"
	tests := []struct {
		name        string
		passwd      string // "fifo", "huge", "dir" or content
		user, group string
		want        error
		uid         uint32
	}{
		{"ok by name", passwd, "web", "0", nil, 1000},
		{"ok by number", passwd, "1000", "0", nil, 1000},
		{"uid 2^31", passwd, "2147483648", "0", ErrBadID, 0},
		{"uid 2^32-1", passwd, "4294967295", "0", ErrBadID, 0},
		{"gid 2^31", passwd, "0", "2147483648", ErrBadID, 0},
		{"passwd names a big uid", passwd, "big", "0", ErrBadID, 0},
		{"passwd is a fifo", "fifo", "web", "0", safefile.ErrNotRegular, 0},
		{"passwd is huge", "huge", "web", "0", safefile.ErrTooLarge, 0},
		{"passwd is a directory", "dir", "web", "0", safefile.ErrNotRegular, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "etc", "passwd")
			os.MkdirAll(filepath.Dir(p), 0o755)
			var err error
			switch tt.passwd {
			case "fifo":
				err = unix.Mkfifo(p, 0o644)
			case "huge":
				if err = os.WriteFile(p, []byte(passwd), 0o644); err == nil {
					err = os.Truncate(p, 1<<40)
				}
			case "dir":
				err = os.Mkdir(p, 0o755)
			default:
				err = os.WriteFile(p, []byte(tt.passwd), 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			done := make(chan struct{})
			go func() {
				defer close(done)
				u, err := resolveUser(root, tt.user, tt.group, nil)
				switch {
				case tt.want == nil && (err != nil || u.UID != tt.uid):
					t.Errorf("got %+v, %v; want uid %d", u, err, tt.uid)
				case tt.want != nil && !errors.Is(err, tt.want):
					t.Errorf("got %+v, %v; want %v", u, err, tt.want)
				}
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("resolveUser blocked for 5 s")
			}
		})
	}
}
