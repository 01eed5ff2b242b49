//go:build e2e

package tests

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/userns"
)

// treeOwners lists every file of the store's rendered trees with its
// owner, mode and size: what a pod with --private-users must not change.
func treeOwners(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(filepath.Join(dir, "cas", "tree"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		m[p] = fmt.Sprintf("%d:%d %v %d", st.Uid, st.Gid, fi.Mode(), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var uidMapLine = regexp.MustCompile(`\b0\s+(\d+)\s+65536\b`)

// TestPrivateUsers: a --private-users pod's root is root inside and an
// unprivileged uid range on the host, its own; it cannot write a host
// root's file through a volume; the shared image trees stay as they were;
// status shows the range and gc releases it.
func TestPrivateUsers(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	host := t.TempDir()
	rootFile := filepath.Join(host, "rootfile")
	if err := os.WriteFile(rootFile, []byte("host\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(rootFile, 0o644)
	// Refused before any pod is made: a stage1 without the feature, copies.
	for _, bad := range [][]string{{"--stage1=kvm"}, {"--stage1=ns", "--no-overlay"}} {
		args := append(append([]string{"--insecure-options=image", "run", "--private-users"}, bad...), busybox, "--exec=/bin/true")
		_, errs, code := e.run(args...)
		if code != 254 || !strings.Contains(errs, "skiff: prepare pod: --private-users unavailable: ") {
			t.Errorf("%v: exit %d, stderr %q; want 254 and why --private-users is unavailable", bad, code, errs)
		}
	}
	if l := e.mustRun("list", "--no-legend"); strings.TrimSpace(l) != "" {
		t.Errorf("refused pods left behind: %s", l)
	}
	// A first pod renders the trees; the pods after it reuse them.
	e.mustRun("--insecure-options=image", "run", "--stage1=ns", busybox, "--exec=/bin/true")
	before := treeOwners(t, e.dir)

	save := filepath.Join(t.TempDir(), "uuid")
	_, out := e.start("--insecure-options=image", "run", "--stage1=ns", "--private-users", "--uuid-file-save="+save,
		"--volume=h,kind=host,source="+host, busybox, "--mount=volume=h,target=/h", "--exec=/bin/sh", "--", "-c",
		`echo "ID=$(id -u):$(id -g)"; cat /proc/self/uid_map; (echo pod >> /h/rootfile) 2>/dev/null || echo VOLUME-REFUSED;
		 echo x >> /etc/passwd && touch /bin/new && chown 1:1 /bin/busybox && echo ROOTFS-WRITTEN; sleep 300`)
	waitFor(t, "the first pod's output", 2*time.Minute, func() bool { return strings.Contains(out.String(), "ROOTFS-WRITTEN") })
	mustContain(t, out.String(), "ID=0:0", "VOLUME-REFUSED")
	m := uidMapLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no uid_map line `0 BASE 65536` in:\n%s", out)
	}
	b, _ := os.ReadFile(save)
	uuid := strings.TrimSpace(string(b))
	st := e.mustRun("status", uuid)
	mustContain(t, st, "private-users="+m[1]+":65536\n")
	mustContain(t, e.mustRun("status", "--format=json", uuid), `"privateUsers":"`+m[1]+`:65536"`)
	first, err := userns.Parse(m[1] + ":65536")
	if err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join("/run/skiff/userns", m[1])
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("the range is not in the host's registry: %v", err)
	}

	// skiff enter joins the pod's user namespace too.
	if got := e.mustRun("enter", uuid, "--", "/bin/cat", "/proc/self/uid_map"); !strings.Contains(uidMapLine.FindString(got), m[1]) {
		t.Errorf("enter: uid_map %q, want the pod's range %s", got, m[1])
	}
	// A second pod, while the first runs, gets another range.
	out2 := e.mustRun("--insecure-options=image", "run", "--stage1=ns", "--private-users", busybox, "--exec=/bin/cat", "--", "/proc/self/uid_map")
	m2 := uidMapLine.FindStringSubmatch(out2)
	if m2 == nil || m2[1] == m[1] {
		t.Fatalf("second pod's uid_map %q, first pod's base %s: want another range", out2, m[1])
	}

	e.mustRun("stop", uuid)
	if b, _ := os.ReadFile(rootFile); string(b) != "host\n" {
		t.Errorf("the pod wrote a host root's file through a volume: %q", b)
	}
	after := treeOwners(t, e.dir)
	for p, v := range before {
		if after[p] != v {
			t.Errorf("image tree changed: %s: %s, was %s", p, after[p], v)
		}
	}
	if len(after) != len(before) {
		t.Errorf("image trees: %d files, were %d", len(after), len(before))
	}

	e.mustRun("gc", "--grace-period=0")
	if _, err := os.Stat(entry); !os.IsNotExist(err) {
		t.Errorf("gc left the range %v in the registry: %v", first, err)
	}
}

// TestPrivateUsersPrepared: prepare chooses the range, run-prepared keeps
// it and claims it again when the host's registry lost it (a reboot
// empties /run); an empty volume is owned, inside, by the uid it asks for.
func TestPrivateUsersPrepared(t *testing.T) {
	e := newEnv(t)
	uuid := strings.TrimSpace(e.mustRun("--insecure-options=image", "prepare", "--stage1=ns", "--private-users",
		"--volume=e,kind=empty,uid=1000,gid=1000", image(t, "busybox.aci"), "--mount=volume=e,target=/e", "--exec=/bin/sh", "--", "-c",
		`cat /proc/self/uid_map; stat -c "OWNER=%u:%g" /e; touch /e/f && echo EMPTY-WRITTEN`))
	m := regexp.MustCompile(`private-users=(\d+):65536\n`).FindStringSubmatch(e.mustRun("status", uuid))
	if m == nil {
		t.Fatalf("status of a prepared --private-users pod shows no range")
	}
	entry := filepath.Join("/run/skiff/userns", m[1])
	if err := os.Remove(entry); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("--insecure-options=image", "run-prepared", uuid)
	if got := uidMapLine.FindStringSubmatch(out); got == nil || got[1] != m[1] {
		t.Errorf("run-prepared: uid_map in %q, want the prepared range %s", out, m[1])
	}
	mustContain(t, out, "OWNER=1000:1000", "EMPTY-WRITTEN")
	if _, err := os.Stat(entry); err != nil {
		t.Errorf("run-prepared did not claim its range again: %v", err)
	}
}
