//go:build e2e

package tests

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// TestLogsNoPodSymlink checks that `skiff logs` shows only the
// pod's own journal files: a pod (a KVM guest's root writes the journal
// dir over 9p) that plants symlinks to host journal files or dirs in its
// journal dir, or makes the dir itself a symlink, does not get the host
// reading them out to whoever reads the pod's logs. Both stage1s share
// the host-side code; ns is enough.
func TestLogsNoPodSymlink(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	runPod := func(who string) (uuid, journalDir string) {
		t.Helper()
		save := filepath.Join(t.TempDir(), "uuid")
		e.mustRun("run", "--stage1=ns", "--uuid-file-save="+save, probe, "--set-env=WHO="+who, "--", "-print-env=WHO")
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		m, _ := filepath.Glob(filepath.Join(pod.PodsDir(e.dir), "*", uuid, "stage1/rootfs/var/log/journal", pod.MachineID(uuid)))
		if len(m) != 1 {
			t.Fatalf("pod %s: journal dir: %v", uuid, m)
		}
		return uuid, m[0]
	}
	// A journal file of the host's, stood in for by another pod's.
	_, other := runPod("host-secret-line")
	host := t.TempDir()
	b, err := os.ReadFile(filepath.Join(other, "system.journal"))
	if err != nil {
		t.Fatal(err)
	}
	hostMID := "0123456789abcdef0123456789abcdef"
	for _, p := range []string{filepath.Join(host, "secret.journal"), filepath.Join(host, "var", hostMID, "system.journal")} {
		os.MkdirAll(filepath.Dir(p), 0o700)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	uuid, dir := runPod("pod-says-hi")
	for name, target := range map[string]string{
		"secret.journal": filepath.Join(host, "secret.journal"), // a file
		hostMID:          filepath.Join(host, "var", hostMID),   // a machine's journal dir
	} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	out := e.mustRun("logs", uuid)
	mustContain(t, out, "WHO=pod-says-hi")
	mustNotContain(t, out, "host-secret-line")

	// The journal dir itself replaced by a symlink to a host one.
	if err := os.Rename(dir, dir+".pod"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(host, "var", hostMID), dir); err != nil {
		t.Fatal(err)
	}
	out, errs, code := e.run("logs", uuid)
	if code == 0 || strings.Contains(out, "host-secret-line") {
		t.Errorf("logs through a symlinked journal dir: exit %d, output %q", code, out)
	}
	if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 || !strings.Contains(errs, "symlink") {
		t.Errorf("want a one-line error naming the symlink, got %q", errs)
	}
}

// TestMemberCannotHoldLocks checks that a skiff group member, who may list
// images, cannot take the store lock (flock needs no write access): held
// exclusively, it would block every root command on the store. A data dir
// whose lock was the group's (as the previous release made it) is fixed by
// root's next command.
func TestMemberCannotHoldLocks(t *testing.T) {
	gid := skiffGroup(t)
	e := newEnv(t)
	bin := reachable(t, e)
	e.mustRun("fetch", "--insecure-options=image", image(t, "probe.aci"))
	lock := filepath.Join(e.dir, "cas", "lock")
	if err := os.Chmod(lock, 0o640); err != nil { // as the previous release left it
		t.Fatal(err)
	}
	if err := os.Chown(lock, 0, gid); err != nil {
		t.Fatal(err)
	}
	e.mustRun("image", "list")
	if out, code := as(t, memberUID, []int{gid}, "flock", "--nonblock", "--exclusive", lock, "true"); code == 0 {
		t.Errorf("a skiff group member took the store lock exclusively:\n%s", out)
	}
	out, code := as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "image", "list")
	if code != 0 || !strings.Contains(out, "skiff.local/probe") {
		t.Errorf("skiff image list as member: exit %d:\n%s", code, out)
	}
}

// TestExtractNotReachable checks that `image extract` keeps an image's
// owners and setuid bits but leaves the tree root's alone: a host user
// must not run the image's setuid-root binary from it.
func TestExtractNotReachable(t *testing.T) {
	e := newEnv(t)
	reachable(t, e)
	e.mustRun("--insecure-options=image", "fetch", suidImage(t))
	out := filepath.Join(filepath.Dir(e.dir), "extracted")
	e.mustRun("image", "extract", "--rootfs-only", "skiff.local/suid", out)
	bin := filepath.Join(out, "probe-suid")
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("%s: mode %v, want the image's setuid bit kept", bin, fi.Mode())
	}
	if out, code := as(t, outsiderUID, nil, bin, "-print-user"); code == 0 || strings.Contains(out, "EUID=0") {
		t.Errorf("host user ran the extracted setuid binary: exit %d:\n%s", code, out)
	}
}

// lockerEnv makes the test binary, re-run by TestMemberCannotLockPods as
// a skiff group member, a process that locks what it can (lockerMain).
const lockerEnv = "SKIFF_E2E_LOCKER"

// lockerMain reads paths from stdin, one a line up to an empty line,
// opens each it may and flocks it (exclusively, else shared), prints
// "locked PATH" for each lock it got and then "ready", and holds the
// locks until stdin closes.
func lockerMain() int {
	in := bufio.NewScanner(os.Stdin)
	var held []*os.File
	for in.Scan() && in.Text() != "" {
		f, err := os.OpenFile(in.Text(), os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil && unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil {
			f.Close()
			continue
		}
		fmt.Println("locked", f.Name())
		held = append(held, f)
	}
	fmt.Println("ready")
	for in.Scan() {
	}
	runtime.KeepAlive(held)
	return 0
}

// TestMemberCannotLockPods checks that a skiff group member, who may list
// pods, cannot lock anything root's commands lock: it tries to flock every
// file and dir under the data dir that it can open, and holds what it
// got while root runs a prepared pod, stops a running one, removes an
// exited one and collects another; the member's own list still tells
// running from prepared pods. Pod dirs as the previous format left them
// (0750) are fixed by root's next command.
func TestMemberCannotLockPods(t *testing.T) {
	gid := skiffGroup(t)
	e := newEnv(t)
	bin := reachable(t, e)
	probe := image(t, "probe.aci")
	prepared := uuidsIn(e.mustRun("prepare", "--stage1=ns", probe))[0]
	runOnce := func() string {
		t.Helper()
		save := filepath.Join(t.TempDir(), "uuid")
		e.mustRun("run", "--stage1=ns", "--uuid-file-save="+save, probe)
		b, _ := os.ReadFile(save)
		return strings.TrimSpace(string(b))
	}
	toRemove, toCollect := runOnce(), runOnce()
	save := filepath.Join(t.TempDir(), "uuid")
	c, _ := e.start("run", "--stage1=ns", "--uuid-file-save="+save, probe, "--", "-sleep=300s")
	var running string
	waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		running = strings.TrimSpace(string(b))
		_, _, code := e.run("status", "--wait-ready=1s", running)
		return running != "" && code == 0
	})

	// As the previous format left them: pod dirs the group may open.
	pods, _ := filepath.Glob(filepath.Join(pod.PodsDir(e.dir), "*", "*-*-*-*-*"))
	for _, p := range pods {
		if err := os.Chmod(p, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(e.dir, "format"), []byte("2\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	e.mustRun("list")
	if b, err := os.ReadFile(filepath.Join(e.dir, "format")); err != nil || strings.TrimSpace(string(b)) != "3" {
		t.Errorf("format file after root's next command: %q, %v; want 3", b, err)
	}
	for _, p := range pods {
		if fi, err := os.Stat(p); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o710 {
			t.Errorf("%s after root's next command: mode %04o, want 0710", p, fi.Mode().Perm())
		}
	}

	// Everything under the data dir but what lies below a root-only dir,
	// which no member can pass.
	var paths []string
	filepath.WalkDir(e.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		paths = append(paths, path)
		if fi, err := d.Info(); err == nil && d.IsDir() && path != e.dir && fi.Mode().Perm()&0o077 == 0 {
			return filepath.SkipDir
		}
		return nil
	})
	self, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	locker := filepath.Join(filepath.Dir(bin), "locker")
	if err := os.WriteFile(locker, self, 0o755); err != nil {
		t.Fatal(err)
	}
	lc := exec.Command(locker)
	lc.Dir = "/"
	lc.Env = append(os.Environ(), lockerEnv+"=1")
	lc.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: memberUID, Gid: memberUID, Groups: []uint32{uint32(gid)}}}
	stdin, _ := lc.StdinPipe()
	stdout, _ := lc.StdoutPipe()
	if err := lc.Start(); err != nil {
		t.Fatal(err)
	}
	defer lc.Wait()
	defer stdin.Close()
	fmt.Fprintln(stdin, strings.Join(paths, "\n")+"\n")
	out := bufio.NewScanner(stdout)
	var locked []string
	for out.Scan() && out.Text() != "ready" {
		locked = append(locked, strings.TrimPrefix(out.Text(), "locked "))
	}
	t.Logf("the member locked %d of %d paths under the data dir (none that root locks)", len(locked), len(paths))
	rootLocks := append([]string{filepath.Join(e.dir, "cas", "lock")}, pods...)
	for _, p := range locked {
		if slices.Contains(rootLocks, p) {
			t.Errorf("a skiff group member locked %s, which root's commands lock", p)
		}
	}

	// The member's list, taking no lock, tells running from prepared.
	lout, code := as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "list", "--no-legend")
	if code != 0 {
		t.Fatalf("skiff list as member: exit %d:\n%s", code, lout)
	}
	for _, l := range strings.Split(lout, "\n") {
		for u, want := range map[string]string{running: "running", prepared: "prepared", toRemove: "exited"} {
			if strings.HasPrefix(l, u[:8]) && !strings.Contains(l, want) {
				t.Errorf("member's list shows %s not %s: %q", u, want, l)
			}
		}
	}
	mustContain(t, lout, running[:8], prepared[:8], toRemove[:8])
	sout, code := as(t, memberUID, []int{gid}, bin, "--dir="+e.dir, "status", running)
	if code != 0 || !strings.Contains(sout, "state=running") {
		t.Errorf("skiff status as member: exit %d:\n%s", code, sout)
	}

	// A member waiting for the running pod to end, taking no lock.
	wait := exec.Command(bin, "--dir="+e.dir, "status", "--wait", running)
	wait.Dir = "/"
	wait.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: memberUID, Gid: memberUID, Groups: []uint32{uint32(gid)}}}
	var waitOut strings.Builder
	wait.Stdout, wait.Stderr = &waitOut, &waitOut
	if err := wait.Start(); err != nil {
		t.Fatal(err)
	}
	defer wait.Process.Kill()

	// Root's commands, with the member's locks held.
	for _, args := range [][]string{{"run-prepared", prepared}, {"stop", running}, {"rm", toRemove}} {
		if out, errs, code := e.run(args...); code != 0 {
			t.Errorf("skiff %v while a member holds what it could lock: exit %d\n%s%s", args, code, out, errs)
		}
	}
	c.Wait()
	waited := make(chan error, 1)
	go func() { waited <- wait.Wait() }()
	select {
	case err := <-waited:
		if err != nil || !strings.Contains(waitOut.String(), "state=exited") {
			t.Errorf("status --wait as member: %v:\n%s", err, waitOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Errorf("status --wait as member still waiting 10 s after the pod ended")
	}
	e.mustRun("gc", "--grace-period=0")
	if _, errs, code := e.run("status", toCollect); code == 0 || !strings.Contains(errs, "does not exist") {
		t.Errorf("pod %s still there after gc while a member held locks: exit %d %s", toCollect, code, errs)
	}
}
