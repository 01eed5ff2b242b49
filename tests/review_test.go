//go:build e2e

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	e.mustRun("image", "extract", "skiff.local/suid", out)
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
