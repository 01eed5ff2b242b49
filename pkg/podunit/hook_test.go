package podunit

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
		ends      string // how the hooks ended the pod, in order: p (poweroff), e (end)
		failed    string
		podStatus int
		statuses  map[string]string // recorded per app, where checked
	}{
		{"SIGTERM while starting, stop requested", 2, true, []exit{{"a", "killed", "TERM", "signal"}, {"b", "exited", "0", "success"}}, "e", "", 0, nil},
		{"SIGTERM while starting, no stop requested", 2, false, []exit{{"a", "killed", "TERM", "signal"}}, "p", "a", 143, nil},
		{"all succeed", 2, false, []exit{{"a", "exited", "0", "success"}, {"b", "exited", "0", "success"}}, "e", "", 0, nil},
		{"first failure wins", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "exited", "5", "exit-code"}}, "pe", "a", 3, nil},
		{"stopped by SIGTERM", 2, false, []exit{{"a", "killed", "TERM", "success"}, {"b", "exited", "0", "success"}}, "e", "", 0, nil},
		{"killed", 2, false, []exit{{"a", "killed", "KILL", "signal"}}, "p", "a", 137, map[string]string{"a": "137"}},
		{"sibling stopped for a failure", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "killed", "TERM", "success"}}, "pe", "a", 3, map[string]string{"a": "3", "b": "0"}},
		{"stopped on request", 2, true, []exit{{"a", "killed", "TERM", "success"}, {"b", "killed", "TERM", "success"}}, "e", "", 0, map[string]string{"a": "0", "b": "0"}},
		{"killed by KILL after a failure", 2, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "killed", "KILL", "signal"}}, "pe", "a", 3, map[string]string{"b": "137"}},
		{"sandbox: a failure neither fails nor ends the pod", 0, false, []exit{{"a", "exited", "3", "exit-code"}, {"b", "exited", "0", "success"}}, "", "", 0, map[string]string{"a": "3", "b": "0"}},
		{"sandbox: app stopped by SIGTERM", 0, false, []exit{{"a", "killed", "TERM", "success"}}, "", "", 0, map[string]string{"a": "143"}},
		{"SIGTERM on its own", 2, false, []exit{{"a", "killed", "TERM", "success"}, {"b", "exited", "0", "success"}}, "e", "", 0, map[string]string{"a": "143"}},
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
			ends := ""
			for _, e := range tt.exits {
				env := map[string]string{"EXIT_CODE": e.code, "EXIT_STATUS": e.status, "SERVICE_RESULT": e.result}
				err := AppExited(root, e.app, tt.napps, func(k string) string { return env[k] },
					func() error { ends += "p"; return nil }, func() error { ends += "e"; return nil })
				if err != nil {
					t.Fatal(err)
				}
			}
			if ends != tt.ends {
				t.Errorf("ends = %q, want %q", ends, tt.ends)
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
	if err := Hook(root, []string{"app-started"}, nil); err != nil {
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
	go func() { done <- Hook(root, []string{"app-started"}, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("app-started waits for a process that is gone")
	}
	t.Setenv("MAINPID", "")
	if err := Hook(root, []string{"app-started"}, nil); !errors.Is(err, ErrUsage) {
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

// TestSyncJournal checks that the sync waits for journald's socket when
// the last app ended before journald started, and returns once journald
// answered the Synchronize call; a path that cannot become the socket is
// an error at once.
func TestSyncJournal(t *testing.T) {
	t.Run("journald starts late", func(t *testing.T) {
		root := t.TempDir()
		sock := filepath.Join(root, journalVarlink)
		if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
			t.Fatal(err)
		}
		got := make(chan string, 1)
		go func() {
			time.Sleep(100 * time.Millisecond)
			l, err := net.Listen("unix", sock)
			if err != nil {
				got <- err.Error()
				return
			}
			defer l.Close()
			c, err := l.Accept()
			if err != nil {
				got <- err.Error()
				return
			}
			defer c.Close()
			req, _ := bufio.NewReader(c).ReadBytes(0)
			c.Write([]byte("{}\x00"))
			got <- string(req)
		}()
		if err := SyncJournal(root, 10*time.Second); err != nil {
			t.Fatalf("SyncJournal: %v", err)
		}
		if req := <-got; !strings.Contains(req, "io.systemd.Journal.Synchronize") {
			t.Errorf("journald got %q, want a Synchronize call", req)
		}
	})
	t.Run("journald never answers", func(t *testing.T) {
		root := t.TempDir()
		sock := filepath.Join(root, journalVarlink)
		os.MkdirAll(filepath.Dir(sock), 0o755)
		l, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		start := time.Now()
		if err := SyncJournal(root, 200*time.Millisecond); err == nil {
			t.Error("SyncJournal with a silent journald succeeded")
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("SyncJournal with a 200 ms timeout took %v", d)
		}
	})
	t.Run("no journal directory", func(t *testing.T) {
		root := t.TempDir()
		// A file where journald's runtime directory belongs: not a wait, an error.
		dir := filepath.Dir(filepath.Join(root, journalVarlink))
		os.MkdirAll(filepath.Dir(dir), 0o755)
		os.WriteFile(dir, nil, 0o644)
		done := make(chan error, 1)
		go func() { done <- SyncJournal(root, time.Minute) }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("SyncJournal without a journal directory succeeded")
			}
		case <-time.After(5 * time.Second):
			t.Error("SyncJournal without a journal directory still waits after 5 s")
		}
	})
}

// TestOOMKilled: systemd's oom-kill result, or SIGKILL with an OOM kill
// counted in the app's v1 memory cgroup; AppExited records it.
func TestOOMKilled(t *testing.T) {
	tests := []struct {
		name       string
		code       string // EXIT_CODE
		status     string // EXIT_STATUS
		result     string // SERVICE_RESULT
		oomControl string // memory.oom_control, "" for none
		want       bool
	}{
		{"systemd says so", "killed", "KILL", "oom-kill", "", true},
		{"v1 count", "killed", "KILL", "signal", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n", true},
		{"shell's status 137, v1 count", "exited", "137", "exit-code", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", true},
		{"killed, no OOM kill", "killed", "KILL", "signal", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n", false},
		{"killed, no memory cgroup", "killed", "KILL", "signal", "", false},
		{"exited 1 after an OOM kill of a child", "exited", "1", "exit-code", "oom_kill 1\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.oomControl != "" {
				dir := filepath.Join(root, CgroupDir, "a", "memory")
				os.MkdirAll(dir, 0o755)
				os.WriteFile(filepath.Join(dir, "memory.oom_control"), []byte(tt.oomControl), 0o644)
			}
			env := map[string]string{"EXIT_CODE": tt.code, "EXIT_STATUS": tt.status, "SERVICE_RESULT": tt.result}
			if err := AppExited(root, "a", 0, func(k string) string { return env[k] }, nil, nil); err != nil {
				t.Fatal(err)
			}
			_, err := os.Stat(filepath.Join(root, pod.InPodOOMDir, "a"))
			if got := err == nil; got != tt.want {
				t.Errorf("recorded OOM kill: %v, want %v", got, tt.want)
			}
		})
	}
}
