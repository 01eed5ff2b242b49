package stage1kit

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestPageOutBinary: the test binary's own file pages leave its resident
// set.
func TestPageOutBinary(t *testing.T) {
	before := rssFile(t)
	if err := PageOutBinary(); err != nil {
		t.Fatal(err)
	}
	after := rssFile(t)
	t.Logf("RssFile %d kB → %d kB", before, after)
	if after >= before {
		t.Errorf("RssFile %d kB after, %d kB before: want less", after, before)
	}
}

// rssFile is the process's resident file-backed memory, in kB.
func rssFile(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssFile:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no RssFile in /proc/self/status")
	return 0
}
