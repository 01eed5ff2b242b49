package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/skiffpod/skiff/pkg/pgroup"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// TestCodes checks that each ABI error the agent reports comes back on
// the host as itself.
func TestCodes(t *testing.T) {
	for _, sentinel := range []error{pod.ErrUsage, pod.ErrNotRunning, pod.ErrNoApp} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			m := Codes.Failure(fmt.Errorf("find app web: %w", sentinel))
			if m.ErrCode == "" {
				t.Fatalf("Failure(%v) has no code", sentinel)
			}
			if err := Codes.Err(m); !errors.Is(err, sentinel) {
				t.Errorf("Err(%+v) = %v, want it to wrap %v", m, err, sentinel)
			}
		})
	}
}

// TestRunSystemctlOnly checks that the agent's run request runs the
// guest's systemctl and nothing else.
func TestRunSystemctlOnly(t *testing.T) {
	for _, args := range [][]string{nil, {"/bin/true"}, {"systemctl", "daemon-reload"}, {"/usr/bin/systemctl/../../bin/true"}} {
		if m := runSystemctl(args); m.Op != agent.OpError {
			t.Errorf("run %q: %+v, want a refusal", args, m)
		}
	}
}

// TestGroup checks an entered command's group as the agent drives it: a
// signal reaches every process of the group, the reply waits until the
// grandchild is reaped too, and nothing is signalled once the command
// ended (its process group ID may be another's by then).
func TestGroup(t *testing.T) {
	c := exec.Command("sh", "-c", "sleep 60 & wait")
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	g := &group{}
	g.started(c.Process.Pid)
	g.signal(syscall.SIGTERM)
	reaped := make(chan struct{})
	go func() { c.Wait(); close(reaped) }()
	<-reaped
	want := agent.Message{Op: agent.OpExit, Code: 143}
	if got := g.done(want); got.Op != want.Op || got.Code != want.Code {
		t.Errorf("done = %+v, want %+v", got, want)
	}
	if pgroup.Exists(c.Process.Pid) {
		t.Error("done returned while a process of the signalled group was left")
	}
	g.signal(syscall.SIGKILL) // after done: must not reach a reused group
	if g.signalled && g.pgid != 0 {
		t.Error("signal after done reached the group")
	}
}

// TestAppStats reads an app's usage from a cgroup v2 tree as the guest's
// systemd lays it out; an app without a group does not run.
func TestAppStats(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "system.slice", podunit.UnitName("web"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"cpu.stat":       "usage_usec 1500\nuser_usec 1000\n",
		"memory.current": "4096000\n",
		"memory.stat":    "anon 3000000\ninactive_file 96000\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := appStats(root, "web")
	var got pod.AppStats
	if err := json.Unmarshal(m.Data, &got); m.Op != agent.OpStats || err != nil {
		t.Fatalf("appStats = %+v (%v), want a stats reply", m, err)
	}
	if want := (pod.AppStats{CPUNanos: 1500000, WorkingSetBytes: 4000000, RSSBytes: 3000000}); got != want {
		t.Errorf("appStats = %+v, want %+v", got, want)
	}
	if m := appStats(root, "gone"); !errors.Is(Codes.Err(m), pod.ErrNoApp) {
		t.Errorf("appStats of an app without a group = %+v, want ErrNoApp", m)
	}
}
