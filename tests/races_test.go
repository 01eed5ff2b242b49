//go:build e2e

package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/testhook"
)

// The race tests force each bad interleaving once through a test hook
// (pkg/testhook, docs/testing.md), then run the plain race a number of
// times: raceRuns per stage1.
var raceRuns = map[string]int{"ns": 50, "kvm": 10}

// hook is one armed test hook: a FIFO the skiff process blocks on at the
// hook's point.
type hook struct {
	t    *testing.T
	path string
	env  string // NAME=VALUE to give the paused process
	w    *os.File
}

func newHook(t *testing.T, name string) *hook {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook-"+name)
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	h := &hook{t: t, path: path, env: testhook.EnvPrefix + name + "=" + path}
	t.Cleanup(h.release)
	return h
}

// reached waits until a process is paused at the hook.
func (h *hook) reached() {
	h.t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		f, _ := os.OpenFile(h.path, os.O_WRONLY, 0)
		opened <- f
	}()
	select {
	case h.w = <-opened:
	case <-time.After(2 * time.Minute):
		if f, err := os.OpenFile(h.path, os.O_RDONLY|unix.O_NONBLOCK, 0); err == nil {
			f.Close() // unblock the opener
		}
		h.t.Fatalf("no process reached hook %s", h.path)
	}
}

// release lets the paused process go on.
func (h *hook) release() {
	if h.w != nil {
		h.w.Close()
		h.w = nil
	}
}

// startWith runs skiff in the background with extra environment.
func (e *env) startWith(extraEnv []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	e.t.Helper()
	full := append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)
	c := exec.Command(skiffBin, full...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	c.Env = append(os.Environ(), extraEnv...)
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	return c, &out
}

// TestImageRmRacesPrepare: an image rm that resolved its image before a
// pod was prepared from it must not remove it under the pod.
func TestImageRmRacesPrepare(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		id := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "probe.aci")))
		h := newHook(t, testhook.ImageRm)
		rm, rmOut := e.startWith([]string{h.env}, "image", "rm", id)
		h.reached()
		uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1="+s, id))
		h.release()
		if err := rm.Wait(); err == nil {
			t.Errorf("image rm removed the image of prepared pod %s:\n%s", uuid, rmOut)
		} else {
			mustContain(t, rmOut.String(), "in use by pod "+uuid)
		}
		if out, errs, code := e.run("run-prepared", uuid); code != 0 {
			t.Fatalf("run-prepared after the raced image rm: exit %d\n%s%s", code, out, errs)
		}
		e.mustRun("rm", uuid)

		// The plain race: whatever the order, a pod that was prepared runs.
		var prepWon, rmWon int
		for i := range raceRuns[s] {
			if _, _, code := e.run("image", "list", "--format=json"); code != 0 {
				t.Fatal("image list failed")
			}
			e.mustRun("fetch", "--full", image(t, "probe.aci"))
			var wg sync.WaitGroup
			var prepOut, prepErr string
			var prepCode, rmCode int
			wg.Add(2)
			go func() { defer wg.Done(); prepOut, prepErr, prepCode = e.run("prepare", "--stage1="+s, id) }()
			go func() { defer wg.Done(); _, _, rmCode = e.run("image", "rm", id) }()
			wg.Wait()
			if prepCode != 0 {
				if rmCode != 0 {
					t.Fatalf("run %d: both prepare and image rm failed: %s", i, prepErr)
				}
				rmWon++
				continue
			}
			prepWon++
			uuid := strings.TrimSpace(prepOut)
			if rmCode == 0 {
				t.Fatalf("run %d: image rm removed the image of prepared pod %s", i, uuid)
			}
			if i%10 == 0 { // running the pod each time would dominate the test
				if out, errs, code := e.run("run-prepared", uuid); code != 0 {
					t.Fatalf("run %d: run-prepared: exit %d\n%s%s", i, code, out, errs)
				}
			}
			e.mustRun("rm", uuid)
		}
		t.Logf("%d runs on %s: prepare first %d, image rm first %d, failures 0", raceRuns[s], s, prepWon, rmWon)
	})
}

// TestGCSparesRunPrepared: gc looking at a prepared pod must not make a
// concurrent run-prepared of it fail.
func TestGCSparesRunPrepared(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1="+s, image(t, "probe.aci")))
		h := newHook(t, testhook.GCPod)
		gc, gcOut := e.startWith([]string{h.env}, "gc")
		h.reached() // gc is looking at the only pod
		rp, rpOut := e.start("run-prepared", uuid)
		done := make(chan error, 1)
		go func() { done <- rp.Wait() }()
		var rpErr error
		finished := false
		select {
		case rpErr = <-done: // the old code failed at once
			finished = true
		case <-time.After(3 * time.Second):
		}
		h.release()
		if err := gc.Wait(); err != nil {
			t.Errorf("gc: %v\n%s", err, gcOut)
		}
		if !finished {
			rpErr = <-done
		}
		if rpErr != nil {
			t.Fatalf("run-prepared while gc looked at the pod: %v\n%s", rpErr, rpOut)
		}
		e.mustRun("rm", uuid)

		for i := range raceRuns[s] {
			uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1="+s, image(t, "probe.aci")))
			var wg sync.WaitGroup
			var rpOut, rpErr, gcErr string
			var rpCode, gcCode int
			wg.Add(2)
			go func() { defer wg.Done(); rpOut, rpErr, rpCode = e.run("run-prepared", uuid) }()
			go func() { defer wg.Done(); _, gcErr, gcCode = e.run("gc") }()
			wg.Wait()
			if rpCode != 0 || gcCode != 0 {
				t.Fatalf("run %d: run-prepared exit %d (%s%s), gc exit %d (%s)", i, rpCode, rpOut, rpErr, gcCode, gcErr)
			}
			e.mustRun("rm", uuid)
		}
		t.Logf("%d runs of gc against run-prepared on %s: failures 0", raceRuns[s], s)
	})
}

// TestStopIsIdempotent: stop succeeds quietly on a pod that has ended,
// also when it ended while stop was on its way; a pod that never ran is
// an error that says so.
func TestStopIsIdempotent(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		uuid, run := startProbePod(t, e, s, "-sleep=300s")
		h := newHook(t, testhook.StopPod)
		first, firstOut := e.startWith([]string{h.env}, "stop", uuid)
		h.reached() // the first stop has seen the pod running
		e.mustRun("stop", uuid)
		run.Wait()
		h.release()
		if err := first.Wait(); err != nil {
			t.Errorf("stop that raced the pod's end: %v\n%s", err, firstOut)
		}
		for _, args := range [][]string{{"stop", uuid}, {"stop", "--force", uuid}} {
			if out, errs, code := e.run(args...); code != 0 || errs != "" {
				t.Errorf("skiff %s on an exited pod: exit %d, stderr %q, stdout %q", strings.Join(args, " "), code, errs, out)
			}
		}
		e.mustRun("rm", uuid)

		prepared := strings.TrimSpace(e.mustRun("prepare", "--stage1="+s, image(t, "probe.aci")))
		_, errs, code := e.run("stop", prepared)
		if code == 0 || !strings.Contains(errs, "never ran") || len(errorLines(errs)) != 1 {
			t.Errorf("stop of a prepared pod: exit %d, stderr %q; want one line saying it never ran", code, errs)
		}
		e.mustRun("rm", prepared)

		// The plain race: stop while the app is ending by itself.
		for i := range raceRuns[s] {
			sleep := fmt.Sprintf("-sleep=%dms", 100*(i%5))
			uuid, run := startProbePod(t, e, s, sleep)
			force := []string{}
			if i%2 == 1 {
				force = []string{"--force"}
			}
			args := append(append([]string{"stop"}, force...), uuid)
			if out, errs, code := e.run(args...); code != 0 {
				t.Fatalf("run %d (%s): skiff %s: exit %d\n%s%s", i, sleep, strings.Join(args, " "), code, out, errs)
			}
			if out, errs, code := e.run(args...); code != 0 {
				t.Fatalf("run %d: second skiff %s: exit %d\n%s%s", i, strings.Join(args, " "), code, out, errs)
			}
			run.Wait()
			e.mustRun("rm", uuid)
		}
		t.Logf("%d stops racing a natural exit on %s: failures 0", raceRuns[s], s)
	})
}

// startProbePod runs the probe in the background and returns once the
// pod runs (its app started: the probe may have ended already).
func startProbePod(t *testing.T, e *env, s string, probeArgs ...string) (string, *exec.Cmd) {
	t.Helper()
	save := filepath.Join(t.TempDir(), "uuid")
	c, _ := e.start(append([]string{"run", "--stage1=" + s, "--uuid-file-save=" + save, image(t, "probe.aci"), "--"}, probeArgs...)...)
	var uuid string
	waitFor(t, "the pod to run", 2*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		if uuid == "" {
			return false
		}
		out, _, _ := e.run("status", uuid)
		return strings.Contains(out, "state=running") || strings.Contains(out, "state=exited")
	})
	return uuid, c
}
