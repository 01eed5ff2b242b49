package podunit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
)

func TestAppStatus(t *testing.T) {
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
		if got := appStatus(tt.code, tt.status); got != tt.want {
			t.Errorf("appStatus(%q, %q) = %d, want %d", tt.code, tt.status, got, tt.want)
		}
	}
}

func TestAppExited(t *testing.T) {
	type exit struct{ app, code, status, result string }
	tests := []struct {
		name      string
		napps     int  // 0: an app sandbox's apps (SandboxUnit)
		stopping  bool // a clean stop was requested
		exits     []exit
		poweroffs int
		failed    string
		podStatus int
		statuses  map[string]string // recorded per app, where checked
	}{
		{"SIGTERM while starting, stop requested", 2, true, []exit{{"a", "killed", "TERM", "signal"}, {"b", "exited", "0", "success"}}, 1, "", 0, nil},
		{"SIGTERM while starting, no stop requested", 2, false, []exit{{"a", "killed", "TERM", "signal"}}, 1, "a", 143, nil},
		{"all succeed", 2, false, []exit{{"a", "exited", "0", "success"}, {"b", "exited", "0", "success"}}, 1, "", 0, nil},
		{"first failure wins", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "exited", "5", "exit-code"}}, 2, "a", 3, nil},
		{"stopped by SIGTERM", 2, false, []exit{{"a", "killed", "TERM", "success"}, {"b", "exited", "0", "success"}}, 1, "", 0, nil},
		{"killed", 2, false, []exit{{"a", "killed", "KILL", "signal"}}, 1, "a", 137, map[string]string{"a": "137"}},
		{"sibling stopped for a failure", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "killed", "TERM", "success"}}, 2, "a", 3, map[string]string{"a": "3", "b": "0"}},
		{"stopped on request", 2, true, []exit{{"a", "killed", "TERM", "success"}, {"b", "killed", "TERM", "success"}}, 1, "", 0, map[string]string{"a": "0", "b": "0"}},
		{"killed by KILL after a failure", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "killed", "KILL", "signal"}}, 2, "a", 3, map[string]string{"b": "137"}},
		{"sandbox: a failure neither fails nor ends the pod", 0, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "exited", "0", "success"}}, 0, "", 0, map[string]string{"a": "3", "b": "0"}},
		{"sandbox: app stopped by SIGTERM", 0, false, []exit{{"a", "killed", "TERM", "success"}}, 0, "", 0, map[string]string{"a": "143"}},
		{"SIGTERM on its own", 2, false, []exit{{"a", "killed", "TERM", "success"}, {"b", "exited", "0", "success"}}, 1, "", 0, map[string]string{"a": "143"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.stopping {
				os.MkdirAll(filepath.Join(root, filepath.Dir(StoppingFile)), 0o755)
				if err := Stopping(root); err != nil {
					t.Fatal(err)
				}
			}
			poweroffs := 0
			for _, e := range tt.exits {
				env := map[string]string{"EXIT_CODE": e.code, "EXIT_STATUS": e.status, "SERVICE_RESULT": e.result}
				err := AppExited(root, e.app, tt.napps, func(k string) string { return env[k] },
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
			for app, want := range tt.statuses {
				if b, _ := os.ReadFile(filepath.Join(root, pod.InPodStatusDir, app)); string(b) != want {
					t.Errorf("status of %s = %q, want %q", app, b, want)
				}
			}
		})
	}
}

// TestAppStarted checks that the app-started hook returns only once the
// unit's main process has exec'd the app, not while it still runs stage2.
func TestAppStarted(t *testing.T) {
	root := t.TempDir()
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	stage2 := filepath.Join(root, Stage2Path)
	if err := os.MkdirAll(filepath.Dir(stage2), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stage2, sh, 0o755); err != nil {
		t.Fatal(err)
	}
	// "stage2" (a shell) takes a while to set the app up, then execs it.
	const setup = 300 * time.Millisecond
	launcher := exec.Command(stage2, "-c", fmt.Sprintf("sleep %f; exec sleep 10", setup.Seconds()))
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { launcher.Process.Kill(); launcher.Wait() }()
	t.Setenv("MAINPID", strconv.Itoa(launcher.Process.Pid))
	start := time.Now()
	if err := Hook(root, []string{"app-started"}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < setup/2 {
		t.Errorf("app-started returned after %s, while stage2 was still setting up for %s", d, setup)
	}
	if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", launcher.Process.Pid)); filepath.Base(exe) != "sleep" {
		t.Errorf("app-started returned while the main process runs %q, want the app (sleep)", exe)
	}
	// A main process that is gone (the app ended at once) is started.
	launcher.Process.Kill()
	launcher.Wait()
	done := make(chan error, 1)
	go func() { done <- Hook(root, []string{"app-started"}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("app-started waits for a process that is gone")
	}
	t.Setenv("MAINPID", "")
	if err := Hook(root, []string{"app-started"}); !errors.Is(err, ErrUsage) {
		t.Errorf("app-started without MAINPID: %v, want a usage error", err)
	}
}

func TestPodExit(t *testing.T) {
	apps := []App{{Name: "a"}, {Name: "b"}}
	tests := []struct {
		name    string
		files   map[string]string
		want    int
		wantErr bool
	}{
		{"all succeeded", map[string]string{pod.InPodStatusDir + "/a": "0", pod.InPodStatusDir + "/b": "0"}, 0, false},
		{"first failure wins", map[string]string{pod.InPodStatusDir + "/a": "3", pod.InPodStatusDir + "/b": "143", FailedFile: "a"}, 3, false},
		{"failed without status of its own", map[string]string{pod.InPodStatusDir + "/a": "0", FailedFile: "a"}, 1, false},
		{"app without status", map[string]string{pod.InPodStatusDir + "/a": "0"}, 0, true},
		{"stopped before b started", map[string]string{pod.InPodStatusDir + "/a": "0", StoppingFile: ""}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tt.files {
				p = filepath.Join(root, p)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := PodExit(root, apps)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("PodExit = %d, %v; want %d, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
