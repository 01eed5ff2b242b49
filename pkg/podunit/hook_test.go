package podunit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExitStatus(t *testing.T) {
	tests := []struct {
		code, status string
		want         int
	}{
		{"exited", "0", 0},
		{"exited", "7", 7},
		{"killed", "TERM", 143},
		{"killed", "KILL", 137},
		{"dumped", "SEGV", 139},
		{"", "", 254},
	}
	for _, tt := range tests {
		if got := exitStatus(tt.code, tt.status); got != tt.want {
			t.Errorf("exitStatus(%q, %q) = %d, want %d", tt.code, tt.status, got, tt.want)
		}
	}
}

func TestAppExited(t *testing.T) {
	type exit struct{ app, code, status, result string }
	tests := []struct {
		name      string
		exits     []exit
		poweroffs int
		failed    string
		podStatus int
	}{
		{"all succeed", []exit{{"a", "exited", "0", "success"}, {"b", "exited", "0", "success"}}, 1, "", 0},
		{"first failure wins", []exit{{"a", "exited", "3", "exit-code"}, {"b", "exited", "5", "exit-code"}}, 2, "a", 3},
		{"stopped by SIGTERM", []exit{{"a", "killed", "TERM", "success"}, {"b", "exited", "0", "success"}}, 1, "", 0},
		{"killed", []exit{{"a", "killed", "KILL", "signal"}}, 1, "a", 137},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			poweroffs := 0
			for _, e := range tt.exits {
				env := map[string]string{"EXIT_CODE": e.code, "EXIT_STATUS": e.status, "SERVICE_RESULT": e.result}
				err := AppExited(root, e.app, 2, func(k string) string { return env[k] },
					func() error { poweroffs++; return nil })
				if err != nil {
					t.Fatal(err)
				}
			}
			if poweroffs != tt.poweroffs {
				t.Errorf("poweroffs = %d, want %d", poweroffs, tt.poweroffs)
			}
			b, _ := os.ReadFile(filepath.Join(root, FailedFile))
			if string(b) != tt.failed {
				t.Errorf("failed app = %q, want %q", b, tt.failed)
			}
			var apps []App
			for _, e := range tt.exits {
				apps = append(apps, App{Name: e.app})
			}
			st, err := PodExit(root, apps)
			if err != nil || st != tt.podStatus {
				t.Errorf("podExit = %d, %v; want %d", st, err, tt.podStatus)
			}
		})
	}
}
