package pod

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// procLocks lists the locks the kernel holds: readable by anyone, so a
// skiff group member, who cannot open a pod dir (docs/security.md), learns
// whether a pod is in use without taking a lock root could trip over.
var procLocks = "/proc/locks"

// heldExclusive reports whether some process holds an exclusive flock(2)
// on the pod dir, read from procLocks: lines such as
//
//	3: FLOCK  ADVISORY  WRITE 1234 00:2a:56789 0 EOF
//
// whose device (major:minor in hex) and inode are the dir's. Waiters
// ("3: -> FLOCK ...") hold nothing and are skipped.
func (p *Pod) heldExclusive() (bool, error) {
	var st unix.Stat_t
	if err := unix.Stat(p.Path(), &st); err != nil {
		return false, p.notExist(err)
	}
	f, err := os.Open(procLocks)
	if err != nil {
		return false, fmt.Errorf("probe lock of pod %s: %w", p.UUID, err)
	}
	defer f.Close()
	return lockedIn(f, st.Dev, st.Ino)
}

// lockedIn reports whether the /proc/locks text r shows an exclusive
// flock on inode ino of device dev.
func lockedIn(r io.Reader, dev, ino uint64) (bool, error) {
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 6 && f[1] == "FLOCK" && f[3] == "WRITE" && f[5] == want {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("read %s: %w", procLocks, err)
	}
	return false, nil
}
