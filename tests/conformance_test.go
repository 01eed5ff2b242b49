//go:build e2e

package tests

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/pod"
)

// conformance checks every rule of docs/stage1-abi.md against one stage1,
// through the skiff CLI. stage1 is a --stage1 value.
func conformance(t *testing.T, stage1 string) {
	e0 := newEnv(t)
	e := e0
	probe := image(t, "probe.aci")
	run := func(args ...string) []string { return append([]string{"run", "--stage1=" + stage1}, args...) }

	t.Run("entrypoints reject an unknown flag with a usage error", func(t *testing.T) {
		eps, err := extractEntrypoints(stage1Image(stage1), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		const uuid = "00000000-0000-4000-8000-000000000000"
		argv := map[string][]string{
			pod.EntrypointRun:   {"--no-such-flag", uuid},
			pod.EntrypointEnter: {"--app=probe", "--no-such-flag", uuid, "--", "/bin/true"},
			pod.EntrypointStop:  {"--no-such-flag", uuid},
			pod.EntrypointGC:    {"--no-such-flag", uuid},
		}
		for _, ep := range pod.AppEntrypoints {
			argv[ep] = []string{"--app=probe", "--no-such-flag", uuid}
		}
		for ep, bin := range eps {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cwd := t.TempDir()
			c := exec.CommandContext(ctx, bin, argv[ep]...)
			c.Args[0] = ep
			c.Dir = cwd
			var out, errs bytes.Buffer
			c.Stdout, c.Stderr = &out, &errs
			err := c.Run()
			cancel()
			if c.ProcessState == nil {
				t.Fatalf("%s: %v", ep, err)
			}
			if code := c.ProcessState.ExitCode(); code != pod.ExitFailure || !strings.Contains(errs.String(), "no-such-flag") ||
				strings.Count(strings.TrimSpace(errs.String()), "\n") > 0 {
				t.Errorf("%s %q: exit %d, want %d with one line naming the flag:\n%s%s", ep, argv[ep], code, pod.ExitFailure, out.String(), errs.String())
			}
			if ents, _ := os.ReadDir(cwd); len(ents) > 0 {
				t.Errorf("%s with an unknown flag wrote %s in its working directory", ep, ents[0].Name())
			}
		}
		if len(eps) == 0 {
			t.Fatalf("%s offers no entrypoint", stage1)
		}
	})
	t.Run("run exits 0 when every app succeeds", func(t *testing.T) {
		e := e0.with(t)
		if _, errs, code := e.run(run(probe, "--", "-exit=0")...); code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
	})
	t.Run("run exits with the failing app's status", func(t *testing.T) {
		e := e0.with(t)
		if _, errs, code := e.run(run(probe, "--", "-exit=7")...); code != 7 {
			t.Fatalf("exit %d, want 7: %s", code, errs)
		}
	})
	t.Run("first failing app of several decides", func(t *testing.T) {
		e := e0.with(t)
		_, errs, code := e.run(run(probe, "--name=ok", "--", "-sleep=30s", "---",
			probe, "--name=bad", "--", "-exit=4", "---",
			probe, "--name=late", "--", "-sleep=30s")...)
		if code != 4 {
			t.Fatalf("exit %d, want 4: %s", code, errs)
		}
	})
	t.Run("app output reaches run's output", func(t *testing.T) {
		e := e0.with(t)
		out, errs, code := e.run(run(probe, "--", "-print-env=AC_APP_NAME")...)
		if code != 0 || !strings.Contains(out+errs, "AC_APP_NAME=probe") {
			t.Fatalf("exit %d; output lacks AC_APP_NAME=probe:\n%s\n%s", code, out, errs)
		}
	})

	// One long-running pod for the rules that need a live pod.
	save := filepath.Join(t.TempDir(), "uuid")
	cmd, out := e.start(run("--uuid-file-save="+save, probe, "--", "-sleep=120s")...)
	var uuid string
	waitFor(t, "the pod's uuid", time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		return uuid != ""
	})
	t.Run("ready marker and lock while running", func(t *testing.T) {
		e := e0.with(t)
		if o, errs, code := e.run("status", "--wait-ready=90s", uuid); code != 0 || !strings.Contains(o, "state=running") {
			t.Fatalf("status --wait-ready: exit %d\n%s%s\npod output:\n%s", code, o, errs, out)
		}
	})
	t.Run("pid or ppid names a live process", func(t *testing.T) {
		e := e0.with(t)
		o := e.mustRun("status", uuid)
		pid := 0
		for _, l := range strings.Split(o, "\n") {
			if v, ok := strings.CutPrefix(l, "pid="); ok {
				pid, _ = strconv.Atoi(v)
			}
		}
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			t.Fatalf("status gives pid %d, which is not a live process:\n%s", pid, o)
		}
	})
	t.Run("enter runs a command in the app and returns its status", func(t *testing.T) {
		e := e0.with(t)
		o, errs, code := e.run("enter", uuid, "--", "/probe", "-print-env=AC_APP_NAME")
		if code != 0 || !strings.Contains(o, "AC_APP_NAME=probe") {
			t.Fatalf("enter: exit %d\n%s%s", code, o, errs)
		}
		if _, _, code := e.run("enter", uuid, "--", "/probe", "-exit=9"); code != 9 {
			t.Errorf("enter exit status %d, want 9", code)
		}
	})
	t.Run("stop ends the pod and releases the lock", func(t *testing.T) {
		e := e0.with(t)
		e.mustRun("stop", uuid)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("skiff run still running 60s after stop; output:\n%s", out)
		}
		if o := e.mustRun("status", uuid); !strings.Contains(o, "state=exited") || !strings.Contains(o, "app-probe=") {
			t.Fatalf("after stop:\n%s", o)
		}
	})
	t.Run("stop --force kills the pod", func(t *testing.T) {
		e := e0.with(t)
		save := filepath.Join(t.TempDir(), "uuid")
		c, _ := e.start(run("--uuid-file-save="+save, probe, "--", "-sleep=120s")...)
		var u string
		waitFor(t, "the pod to be ready", 90*time.Second, func() bool {
			b, _ := os.ReadFile(save)
			u = strings.TrimSpace(string(b))
			o, _, _ := e.run("status", u)
			return u != "" && strings.Contains(o, "state=running")
		})
		e.mustRun("stop", "--force", u)
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("skiff run still running 30s after stop --force")
		}
	})
	t.Run("gc removes exited pods and leaves no mounts", func(t *testing.T) {
		e := e0.with(t)
		e.mustRun("gc", "--grace-period=0")
		if o := e.mustRun("list", "--no-legend"); strings.TrimSpace(o) != "" {
			t.Errorf("pods left after gc:\n%s", o)
		}
		if m := mountsUnder(e.dir); len(m) > 0 {
			t.Errorf("mounts left after gc: %v", m)
		}
	})
}

func TestConformanceStub(t *testing.T) { conformance(t, stubACI) }
