package pod

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestLockedIn(t *testing.T) {
	dev := unix.Mkdev(0, 0x2a)
	tests := []struct {
		name  string
		locks string
		want  bool
	}{
		{"exclusive flock", "1: FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF\n", true},
		{"shared flock", "1: FLOCK  ADVISORY  READ 4242 00:2a:1234 0 EOF\n", false},
		{"waiter only", "1: -> FLOCK  ADVISORY  WRITE 4242 00:2a:1234 0 EOF\n", false},
		{"posix lock", "1: POSIX  ADVISORY  WRITE 4242 00:2a:1234 0 EOF\n", false},
		{"other inode", "1: FLOCK  ADVISORY  WRITE 4242 00:2a:12345 0 EOF\n", false},
		{"other device", "1: FLOCK  ADVISORY  WRITE 4242 00:2b:1234 0 EOF\n", false},
		{"among others", "1: POSIX  ADVISORY  WRITE 1 fd:00:9 0 EOF\n2: FLOCK  ADVISORY  WRITE 7 00:2a:1234 0 EOF\n2: -> FLOCK  ADVISORY  WRITE 8 00:2a:1234 0 EOF\n", true},
		{"empty", "", false},
		{"garbage", "x\n\n1:\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lockedIn(strings.NewReader(tt.locks), dev, 1234)
			if err != nil || got != tt.want {
				t.Errorf("lockedIn = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestHeldExclusive checks the lock-free probe against the kernel's
// /proc/locks: it sees an exclusive holder, not a look, and takes no lock
// itself.
func TestHeldExclusive(t *testing.T) {
	dir := t.TempDir()
	p, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := Load(dir, p.UUID)
	if held, err := q.heldExclusive(); err != nil || !held {
		t.Errorf("heldExclusive while locked = %v, %v; want true", held, err)
	}
	p.Unlock()
	done, err := q.Look()
	if err != nil {
		t.Fatal(err)
	}
	if held, err := q.heldExclusive(); err != nil || held {
		t.Errorf("heldExclusive during a look = %v, %v; want false", held, err)
	}
	done()
	if held, err := q.heldExclusive(); err != nil || held {
		t.Errorf("heldExclusive of a free pod = %v, %v; want false", held, err)
	}
	if err := p.TryLock(); err != nil {
		t.Errorf("TryLock after probes: %v", err)
	}
	p.Unlock()
}
