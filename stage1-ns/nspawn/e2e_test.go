//go:build e2e

package nspawn

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pod"
)

// These tests run real pods: the stage1-ns image is built from this tree
// (stage1-ns, stage2, the host's systemd) and each test hand-builds a pod
// directory as stage0 would, takes its lock and execs the run entrypoint.
//
//	go test -tags e2e ./stage1-ns/nspawn/       (as root, with systemd-nspawn and busybox-static)

var (
	imageOnce sync.Once
	imageTar  []byte
	imageErr  error
)

func requirePods(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: run `go test -tags e2e` as root")
	}
	for _, bin := range []string{"systemd-nspawn", "journalctl", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s: apt-get install -y systemd systemd-container", bin)
		}
	}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("needs /bin/busybox: apt-get install -y busybox-static")
	}
	imageOnce.Do(func() { imageTar, imageErr = buildTestImage() })
	if imageErr != nil {
		t.Fatal(imageErr)
	}
}

func buildTestImage() ([]byte, error) {
	dir, err := os.MkdirTemp("", "stage1ns-e2e-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	for _, p := range []string{"stage1-ns", "stage2", "stage1-ns/mkimage"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(p)), "github.com/skiffpod/skiff/"+p)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build %s: %v\n%s", p, err, out)
		}
	}
	aci := filepath.Join(dir, "stage1-ns.aci")
	cmd := exec.Command(filepath.Join(dir, "mkimage"), "-stage1", filepath.Join(dir, "stage1-ns"), "-stage2", filepath.Join(dir, "stage2"),
		"-version", "0.0.0-test", "-o", aci)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build image: %v\n%s", err, out)
	}
	return os.ReadFile(aci)
}

// testApp is one app of a test pod: a busybox shell script.
type testApp struct {
	name, script string
	memory       string // resource/memory limit, e.g. "64M"
}

type testPod struct {
	uuid, dir string
	lock      *os.File
}

func newPod(t *testing.T, apps ...testApp) *testPod {
	t.Helper()
	p := &testPod{uuid: uuid.NewString()}
	p.dir = filepath.Join(t.TempDir(), "pods", "run", p.uuid)
	if err := untar(imageTar, filepath.Join(p.dir, pod.Stage1Dir)); err != nil {
		t.Fatal(err)
	}
	pm := schema.BlankPodManifest()
	for _, a := range apps {
		name := types.MustACName(a.name)
		app := &types.App{Exec: types.Exec{"/bin/busybox", "sh", "-c", a.script}, User: "0", Group: "0"}
		if a.memory != "" {
			iso, err := types.NewResourceMemoryIsolator(a.memory, a.memory)
			if err != nil {
				t.Fatal(err)
			}
			app.Isolators = append(app.Isolators, iso.AsIsolator())
		}
		img := schema.BlankImageManifest()
		img.Name = *types.MustACIdentifier("example.com/" + a.name)
		img.App = app
		root := filepath.Join(p.dir, pod.AppRootfs(a.name))
		for _, d := range []string{"bin", "etc", "proc", "dev", "sys", "tmp"} {
			must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
		}
		b, err := os.ReadFile("/bin/busybox")
		must(t, err)
		must(t, os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755))
		must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/:/bin/sh\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644))
		mb, err := json.Marshal(img)
		must(t, err)
		must(t, os.WriteFile(filepath.Join(p.dir, pod.AppManifest(a.name)), mb, 0o644))
		hash, err := types.NewHash("sha512-" + strings.Repeat("0", 128))
		must(t, err)
		pm.Apps = append(pm.Apps, schema.RuntimeApp{Name: *name, Image: schema.RuntimeImage{Name: &img.Name, ID: *hash}, App: app})
	}
	b, err := json.Marshal(pm)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(p.dir, pod.ManifestFile), b, 0o644))
	p.lock, err = os.Open(p.dir)
	must(t, err)
	must(t, unix.Flock(int(p.lock.Fd()), unix.LOCK_EX|unix.LOCK_NB))
	t.Cleanup(func() {
		p.lock.Close()
		if err := p.entrypoint("gc").Run(); err != nil {
			t.Errorf("gc: %v", err)
		}
	})
	return p
}

// entrypoint returns the command for one of the pod's stage1 entrypoints,
// run as stage0 would: in the pod directory, the uuid last.
func (p *testPod) entrypoint(ep string, args ...string) *exec.Cmd {
	var cmd []string
	for i, a := range args {
		if a == "--" {
			cmd, args = args[i:], args[:i:i]
			break
		}
	}
	c := exec.Command(filepath.Join(p.dir, pod.Stage1Rootfs, "skiff", ep), append(append(args, p.uuid), cmd...)...)
	c.Dir = p.dir
	return c
}

// start starts the run entrypoint with the pod's lock as fd 3.
func (p *testPod) start(t *testing.T, stdout io.Writer, flags ...string) *exec.Cmd {
	t.Helper()
	c := p.entrypoint("run", flags...)
	c.ExtraFiles = []*os.File{p.lock}
	c.Env = append(os.Environ(), pod.EnvLockFD+"=3")
	c.Stdout, c.Stderr = stdout, os.Stderr
	must(t, c.Start())
	return c
}

// run runs the pod to its end and returns run's exit status and stdout.
func (p *testPod) run(t *testing.T, flags ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	c := p.start(t, &out, flags...)
	return exitCode(t, c.Wait()), out.String()
}

func (p *testPod) waitReady(t *testing.T) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(filepath.Join(p.dir, pod.ReadyFile)); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("pod not ready after 5s")
}

func (p *testPod) status(t *testing.T, app string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.dir, pod.AppStatusDir, app))
	if err != nil {
		t.Fatalf("status of %s: %v", app, err)
	}
	return string(b)
}

func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestRunOneApp(t *testing.T) {
	requirePods(t)
	p := newPod(t, testApp{name: "hello", script: "echo hello-from-app; exit 3"})
	st, out := p.run(t)
	if st != 3 {
		t.Errorf("run exit status = %d, want 3", st)
	}
	if got := p.status(t, "hello"); got != "3" {
		t.Errorf("status file = %q, want 3", got)
	}
	if !strings.Contains(out, "hello[") || !strings.Contains(out, "]: hello-from-app\n") {
		t.Errorf("run's stdout = %q, want the app's line tagged hello", out)
	}
	if _, err := os.Stat(filepath.Join(p.dir, pod.PidFile)); err != nil {
		t.Errorf("pid file: %v", err)
	}
	jdir := filepath.Join(p.dir, pod.Stage1Rootfs, "var/log/journal", pod.MachineID(p.uuid))
	j, err := exec.Command("journalctl", "--directory="+jdir, "-o", "cat", "SYSLOG_IDENTIFIER=hello").CombinedOutput()
	if err != nil || !strings.Contains(string(j), "hello-from-app") {
		t.Errorf("journalctl --directory=%s: %v\n%s", jdir, err, j)
	}
}

// TestJournalKeepsLastLines checks that a pod whose app logs and exits at
// once, before journald may have started, ends only once journald has
// written every line: the hook ends the pod by reboot(2), which would kill
// a journald still reading the app's output.
func TestJournalKeepsLastLines(t *testing.T) {
	requirePods(t)
	for i := range 3 {
		p := newPod(t, testApp{name: "quick", script: "seq 1 500 | sed 's/^/line-/'"})
		if st, _ := p.run(t); st != 0 {
			t.Fatalf("pod %d: run exit status = %d, want 0", i, st)
		}
		jdir := filepath.Join(p.dir, pod.Stage1Rootfs, "var/log/journal", pod.MachineID(p.uuid))
		j, err := exec.Command("journalctl", "--directory="+jdir, "-o", "cat", "SYSLOG_IDENTIFIER=quick").Output()
		if err != nil {
			t.Fatalf("pod %d: journalctl --directory=%s: %v", i, jdir, err)
		}
		lines := strings.Split(strings.TrimSpace(string(j)), "\n")
		if len(lines) != 500 || lines[499] != "line-500" {
			t.Errorf("pod %d: journal has %d lines ending %q, want 500 ending line-500", i, len(lines), lines[len(lines)-1])
		}
	}
}

func TestRunThreeAppsOneFails(t *testing.T) {
	requirePods(t)
	p := newPod(t,
		testApp{name: "ok", script: "exit 0"},
		testApp{name: "bad", script: "sleep 0.3; exit 7"},
		testApp{name: "slow", script: "exec sleep 100"},
	)
	start := time.Now()
	st, _ := p.run(t)
	if st != 7 {
		t.Errorf("run exit status = %d, want 7", st)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("pod took %v: the failing app did not stop it", d)
	}
	// slow was stopped because bad failed: a clean stop records 0, as rkt
	// records it (docs/pod-lifecycle.md, "Apps' exit statuses").
	for app, want := range map[string]string{"ok": "0", "bad": "7", "slow": "0"} {
		if got := p.status(t, app); got != want {
			t.Errorf("status of %s = %q, want %q", app, got, want)
		}
	}
}

func TestStop(t *testing.T) {
	requirePods(t)
	for _, force := range []bool{false, true} {
		// early: stop arrives right after run started, before run has
		// recorded the pod's pid and before its systemd can act on it.
		for _, early := range []bool{false, true} {
			t.Run(fmt.Sprintf("force=%v,early=%v", force, early), func(t *testing.T) {
				p := newPod(t, testApp{name: "sleeper", script: "exec sleep 100"})
				c := p.start(t, io.Discard)
				if !early {
					p.waitReady(t)
				}
				args := []string{}
				if force {
					args = append(args, "--force")
				}
				if out, err := p.entrypoint("stop", args...).CombinedOutput(); err != nil {
					t.Fatalf("stop: %v\n%s", err, out)
				}
				done := make(chan error, 1)
				go func() { done <- c.Wait() }()
				select {
				case err := <-done:
					st := exitCode(t, err)
					if !force && st != 0 {
						t.Errorf("run after a clean stop exited %d, want 0", st)
					}
					if force && st != pod.ExitFailure {
						t.Errorf("run after a forced stop exited %d, want %d", st, pod.ExitFailure)
					}
				case <-time.After(15 * time.Second):
					c.Process.Kill()
					t.Fatal("pod still running 15s after stop")
				}
			})
		}
	}
}

func TestMemoryLimit(t *testing.T) {
	requirePods(t)
	// dd's 100 MiB buffer cannot fit in 64 MiB.
	p := newPod(t, testApp{name: "hog", memory: "64M",
		script: "grep memory /proc/self/cgroup; exec dd if=/dev/zero of=/dev/null bs=100M count=1"})
	st, out := p.run(t)
	if st != 137 {
		t.Errorf("run exit status = %d, want 137 (OOM-killed)\n%s", st, out)
	}
	if !strings.Contains(out, ":memory:/hog\n") {
		t.Errorf("the app does not see its memory cgroup: %q", out)
	}
}

func TestNetNone(t *testing.T) {
	requirePods(t)
	p := newPod(t, testApp{name: "net", script: "ls /sys/class/net"})
	st, out := p.run(t, "--net=none")
	if st != 0 || !strings.Contains(out, "]: lo\n") || strings.Count(out, "net[") != 1 {
		t.Errorf("--net=none: status %d, interfaces %q, want only lo", st, out)
	}
}

func TestEnter(t *testing.T) {
	requirePods(t)
	p := newPod(t, testApp{name: "target", script: "echo entered > /tmp/mark; exec sleep 100"})
	c := p.start(t, io.Discard)
	p.waitReady(t)
	time.Sleep(100 * time.Millisecond)
	out, err := p.entrypoint("enter", "--app=target", "--", "/bin/busybox", "cat", "/tmp/mark").CombinedOutput()
	if err != nil || string(out) != "entered\n" {
		t.Errorf("enter: %v, output %q, want the app's /tmp/mark", err, out)
	}
	must(t, p.entrypoint("stop").Run())
	exitCode(t, c.Wait())
}

// TestEnterWhenReady checks that the ready marker means every app runs:
// entering at once must find the app in its own root, not the hook or
// stage2 still in the stage1's (where there is no /bin/busybox).
func TestEnterWhenReady(t *testing.T) {
	requirePods(t)
	for i := range 5 {
		p := newPod(t, testApp{name: "target", script: "exec sleep 100"})
		c := p.start(t, io.Discard)
		ready := filepath.Join(p.dir, pod.ReadyFile)
		for j := 0; ; j++ {
			if _, err := os.Stat(ready); err == nil {
				break
			}
			if j == 10000 {
				t.Fatal("pod not ready after 10s")
			}
			time.Sleep(time.Millisecond)
		}
		out, err := p.entrypoint("enter", "--app=target", "--", "/bin/busybox", "echo", "in-app").CombinedOutput()
		if err != nil || string(out) != "in-app\n" {
			t.Errorf("pod %d: enter right after ready: %v, output %q", i, err, out)
		}
		must(t, p.entrypoint("stop").Run())
		exitCode(t, c.Wait())
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// untar extracts a gzip-compressed ACI into dir.
func untar(b []byte, dir string) error {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, os.FileMode(h.Mode))
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var f *os.File
			if f, err = os.OpenFile(p, os.O_CREATE|os.O_WRONLY, os.FileMode(h.Mode)); err == nil {
				_, err = io.Copy(f, tr)
				err = errors.Join(err, f.Close())
			}
		}
		if err != nil {
			return err
		}
	}
}

// TestNspawnFilterLearned: the first pod of a shape runs under the filter
// nspawn compiles, which run learns from its init; the next pod's nspawn
// compiles none (SYSTEMD_SECCOMP=0) and its init installs the learned one:
// the pods' inits hold the very same filters.
func TestNspawnFilterLearned(t *testing.T) {
	requirePods(t)
	// filters returns the filters of a running pod's init and whether its
	// nspawn compiled them.
	filters := func(p *testPod) ([]launch.Filter, bool) {
		t.Helper()
		p.waitReady(t)
		b, err := os.ReadFile(filepath.Join(p.dir, pod.PidFile))
		must(t, err)
		pid, err := strconv.Atoi(string(b))
		must(t, err)
		fs, err := launch.Filters(pid)
		must(t, err)
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		must(t, err)
		ppid := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))[1]
		env, err := os.ReadFile("/proc/" + ppid + "/environ")
		must(t, err)
		return fs, !slices.Contains(strings.Split(string(env), "\x00"), "SYSTEMD_SECCOMP=0")
	}
	runPod := func() ([]launch.Filter, bool) {
		t.Helper()
		p := newPod(t, testApp{name: "sleeper", script: "exec sleep 100"})
		c := p.start(t, io.Discard)
		fs, compiled := filters(p)
		// Used up: a systemd re-exec through the init goes straight on.
		for _, f := range []string{podFilter, podLearn} {
			if _, err := os.Lstat(filepath.Join(p.dir, pod.Stage1Rootfs, "skiff", f)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("/skiff/%s still in the running pod: %v", f, err)
			}
		}
		must(t, p.entrypoint("stop", "--force").Run())
		c.Wait()
		return fs, compiled
	}
	var learned []launch.Filter
	for attempt := 1; ; attempt++ {
		// Another test's pod of the same shape may learn it in between.
		must(t, os.RemoveAll(filterDir))
		fs, compiled := runPod()
		if compiled {
			learned = fs
			break
		}
		if attempt == 3 {
			t.Fatal("no pod ran under nspawn's own filter: something keeps learning it")
		}
	}
	if len(learned) == 0 {
		t.Fatal("the first pod's init has no seccomp filter")
	}
	fs, compiled := runPod()
	if compiled {
		t.Fatal("the second pod's nspawn compiled its filter again (no SYSTEMD_SECCOMP=0): not learned")
	}
	if !reflect.DeepEqual(fs, learned) {
		t.Fatalf("the second pod's init has %d filters, not the %d nspawn installed in the first", len(fs), len(learned))
	}
}
