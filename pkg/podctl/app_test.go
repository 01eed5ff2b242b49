package podctl

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/skiffpod/skiff/pkg/pod"
)

// An app of a sandbox is created until started, running until its exit
// status is recorded, then exited with that status, whatever the marker.
func TestAppState(t *testing.T) {
	tests := []struct {
		name    string
		started bool
		status  string // "" for none
		state   string
		exit    int
	}{
		{"added", false, "", AppCreated, 0},
		{"started", true, "", AppRunning, 0},
		{"stopped", true, "143", AppExited, 143},
		{"exited on its own", true, "7", AppExited, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := pod.Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Unlock()
			write := func(rel, content string) {
				t.Helper()
				if err := os.MkdirAll(filepath.Dir(p.File(rel)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p.File(rel), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if tt.started {
				write(filepath.Join(startedDir, "a"), "")
			}
			if tt.status != "" {
				write(filepath.Join(pod.AppStatusDir, "a"), tt.status)
			}
			st := appState(p, "a")
			if st.Name != "a" || st.State != tt.state {
				t.Errorf("appState = %+v, want state %s", st, tt.state)
			}
			if (st.Exit != nil) != (tt.state == AppExited) || (st.Exit != nil && *st.Exit != tt.exit) {
				t.Errorf("exit = %v, want %d only when exited", st.Exit, tt.exit)
			}
		})
	}
}
