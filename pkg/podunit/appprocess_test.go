package podunit

import (
	"os"
	"path/filepath"
	"testing"
)

// fakeProc makes a proc tree: each process with its PID namespace link and
// its children.
func fakeProc(t *testing.T, procs map[string]struct{ ns, children string }) string {
	t.Helper()
	dir := t.TempDir()
	for pid, p := range procs {
		os.MkdirAll(filepath.Join(dir, pid, "task", pid), 0o755)
		os.MkdirAll(filepath.Join(dir, pid, "ns"), 0o755)
		if err := os.Symlink(p.ns, filepath.Join(dir, pid, "ns", "pid")); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, pid, "task", pid, "children"), []byte(p.children), 0o644)
	}
	return dir
}

func TestAppProcess(t *testing.T) {
	proc := fakeProc(t, map[string]struct{ ns, children string }{
		"10": {"pid:[1]", ""},    // an app that is the unit's main process
		"20": {"pid:[1]", "21 "}, // stage2 waiting for the app in its own PID namespace
		"21": {"pid:[2]", ""},    // that app
		"30": {"pid:[1]", "31"},  // a main process with a child in the same namespace
		"31": {"pid:[1]", ""},
	})
	for _, tc := range []struct{ pid, want int }{
		{10, 10}, {20, 21}, {30, 30}, {99, 99},
	} {
		if got := AppProcess(proc, tc.pid); got != tc.want {
			t.Errorf("AppProcess(%d) = %d, want %d", tc.pid, got, tc.want)
		}
	}
}
