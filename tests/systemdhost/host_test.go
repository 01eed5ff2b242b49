//go:build e2e

package systemdhost

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestPlatform proves, inside one booted host, the systemd features skiff
// relies on; the same checks will later run against `skiff run`.
func TestPlatform(t *testing.T) {
	h := Boot(t, Options{})
	t.Run("NestedPod", func(t *testing.T) { testNestedPod(t, h) })
	t.Run("NotifyReady", func(t *testing.T) { testNotifyReady(t, h) })
	t.Run("SocketActivation", func(t *testing.T) { testSocketActivation(t, h) })
}

// testNestedPod boots a nested systemd container the way stage1-ns will:
// as a delegated unit in machine.slice, registered with machined, with its
// journal readable from the host.
func testNestedPod(t *testing.T, h *Host) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const pod, tag = "pod1", "skiff-e2e-probe"

	// The pristine OS tree with a tmpfs overlay: no second debootstrap, and
	// its empty machine-id gives the pod an id of its own.
	start := time.Now()
	mustRun(ctx, t, h, "systemd-run", "--unit="+pod, "--slice=machine", "-p", "Delegate=yes", "-p", "KillMode=mixed",
		"systemd-nspawn", "--boot", "-D", OSTree, "--volatile=overlay", "-M", pod, "--register=yes", "--link-journal=try-guest")
	// Until machined knows the pod, -M fails; then --wait waits for boot.
	retry(ctx, t, func() error {
		out, _, err := h.Run(ctx, "systemctl", "-M", pod, "is-system-running", "--wait")
		if s := strings.TrimSpace(out); err != nil && s != "degraded" {
			return err
		}
		return nil
	})
	t.Logf("%s booted in %v", pod, time.Since(start).Round(time.Millisecond))

	list := mustRun(ctx, t, h, "machinectl", "list", "--no-legend")
	line := findLine(list, pod+" ")
	if f := strings.Fields(line); len(f) < 3 || f[1] != "container" || f[2] != "systemd-nspawn" {
		t.Fatalf("machinectl list: no running container %s in:\n%s", pod, list)
	}
	t.Logf("machinectl list: %s", line)

	token := fmt.Sprintf("hello from %s %d", pod, time.Now().UnixNano())
	mustRun(ctx, t, h, "systemd-run", "-M", pod, "--wait", "-p", "SyslogIdentifier="+tag, "/bin/echo", token)
	podID := strings.TrimSpace(mustRun(ctx, t, h, "machinectl", "show", pod, "-p", "Id", "--value"))
	hostID := strings.TrimSpace(mustRun(ctx, t, h, "cat", "/etc/machine-id"))
	if podID == hostID {
		t.Errorf("pod machine-id %s equals the host's: the journal cannot be linked", podID)
	}
	retry(ctx, t, func() error {
		out := mustRun(ctx, t, h, "journalctl", "-M", pod, "-t", tag, "-o", "json", "--no-pager")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["MESSAGE"] == token && e["_MACHINE_ID"] == podID {
				return nil
			}
		}
		return fmt.Errorf("journalctl -M %s -t %s: no %q from machine %s in:\n%s", pod, tag, token, podID, out)
	})
	t.Logf("journalctl -M %s -t %s: %s", pod, tag, findLine(mustRun(ctx, t, h, "journalctl", "-M", pod, "-t", tag, "--no-pager"), tag))

	start = time.Now()
	mustRun(ctx, t, h, "systemctl", "stop", pod)
	t.Logf("systemctl stop %s took %v", pod, time.Since(start).Round(time.Millisecond))
	// A transient unit is gone once stopped; what it logged says how it went.
	unitLog := mustRun(ctx, t, h, "journalctl", "-u", pod, "-o", "cat", "--no-pager")
	for _, want := range []string{"Container " + pod + " has been shut down.", pod + ".service: Deactivated successfully."} {
		if !strings.Contains(unitLog, want) {
			t.Errorf("journal of %s.service lacks %q:\n%s", pod, want, unitLog)
		}
	}
	if l := findLine(mustRun(ctx, t, h, "machinectl", "list", "--no-legend"), pod+" "); l != "" {
		t.Errorf("machinectl list still shows %s after stop: %s", pod, l)
	}
}

// testNotifyReady checks that a Type=notify unit stays activating until its
// process sends READY=1.
func testNotifyReady(t *testing.T, h *Host) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const unit, gate = "notify1", "/run/notify1.go"
	// NotifyAccess=all: the message comes from systemd-notify, a child.
	script := fmt.Sprintf("while [ ! -e %s ]; do sleep 0.1; done; systemd-notify --ready; exec sleep infinity", gate)
	started := make(chan error, 1)
	go func() {
		_, _, err := h.Run(ctx, "systemd-run", "--unit="+unit, "--service-type=notify", "-p", "NotifyAccess=all", "/bin/sh", "-c", script)
		started <- err
	}()
	defer h.Run(context.Background(), "systemctl", "stop", unit)

	state := func() string {
		out, _, _ := h.Run(ctx, "systemctl", "show", unit, "-p", "ActiveState", "--value")
		return strings.TrimSpace(out)
	}
	retry(ctx, t, func() error {
		if s := state(); s != "activating" {
			return fmt.Errorf("%s is %q, want activating", unit, s)
		}
		return nil
	})
	time.Sleep(time.Second) // long enough that a unit not waiting for READY=1 would be active
	if s := state(); s != "activating" {
		t.Fatalf("%s is %q before it notified, want activating", unit, s)
	}
	select {
	case err := <-started:
		t.Fatalf("systemd-run returned before the service notified: %v", err)
	default:
	}

	mustRun(ctx, t, h, "touch", gate)
	select {
	case err := <-started:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatalf("systemd-run did not return after READY=1: %v", ctx.Err())
	}
	if s := state(); s != "active" {
		t.Errorf("%s is %q after READY=1, want active", unit, s)
	}
}

// testSocketActivation checks that a service started by a .socket unit gets
// its socket as fd 3 with LISTEN_FDS and LISTEN_PID set for it.
func testSocketActivation(t *testing.T, h *Host) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	files := []struct{ path, content string }{
		{"/run/systemd/system/echo-fds.socket", "[Socket]\nListenStream=127.0.0.1:7777\nAccept=yes\n"},
		// A script, not ExecStart=sh -c: systemd would expand $LISTEN_FDS itself.
		{"/run/systemd/system/echo-fds@.service", "[Service]\nExecStart=/run/echo-fds\n"},
		{"/run/echo-fds", "#!/bin/sh\necho \"LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID PID=$$\" >&3\n"},
	}
	for _, f := range files {
		mustRun(ctx, t, h, "sh", "-c", `printf '%s' "$1" >"$2" && chmod 755 "$2"`, "sh", f.content, f.path)
	}
	mustRun(ctx, t, h, "systemctl", "daemon-reload")
	mustRun(ctx, t, h, "systemctl", "start", "echo-fds.socket")
	defer h.Run(context.Background(), "systemctl", "stop", "echo-fds.socket")

	// bash's /dev/tcp is the only client in a minbase root.
	out := strings.TrimSpace(mustRun(ctx, t, h, "bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/7777 && cat <&3"))
	t.Logf("activated service wrote: %s", out)
	var fds, listenPID, pid int
	if _, err := fmt.Sscanf(out, "LISTEN_FDS=%d LISTEN_PID=%d PID=%d", &fds, &listenPID, &pid); err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	if fds != 1 || listenPID != pid {
		t.Errorf("got LISTEN_FDS=%d LISTEN_PID=%d in pid %d, want LISTEN_FDS=1 and LISTEN_PID=%d", fds, listenPID, pid, pid)
	}
}

func mustRun(ctx context.Context, t *testing.T, h *Host, args ...string) string {
	t.Helper()
	out, _, err := h.Run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// retry calls f until it succeeds or ctx ends, then fails with f's last error.
func retry(ctx context.Context, t *testing.T, f func() error) {
	t.Helper()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("gave up: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findLine returns the first line of text containing substr, trimmed.
func findLine(text, substr string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
