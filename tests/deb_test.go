//go:build e2e

package tests

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/skiffpod/skiff/tests/systemdhost"
)

// TestDeb: the package `make deb` builds installs with apt on a fresh
// Debian 12 (the systemd test host's root, dependencies from Debian's
// archive), makes the skiff group, enables the gc timer, ships the man
// pages, completion and both stage1 images, and, booted, runs a pod.
func TestDeb(t *testing.T) {
	debs, _ := filepath.Glob(filepath.Join(binDir, "skiff_*_amd64.deb"))
	if len(debs) != 1 {
		t.Fatalf("want one %s/skiff_*_amd64.deb, found %q: run `make deb`", binDir, debs)
	}
	root := os.Getenv("SKIFF_TESTHOST")
	if root == "" {
		root = systemdhost.DefaultRoot
	}
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		t.Fatalf("systemd test host %s not built: run `%s`", root, systemdhost.BuildTarget)
	}
	// A writable copy-on-write root: the cached one is never written.
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "root")
	for _, d := range []string{upper, work, merged} {
		os.Mkdir(d, 0o755)
	}
	if err := syscall.Mount("overlay", merged, "overlay", 0, fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", root, upper, work)); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(merged, syscall.MNT_DETACH)
	pkg := filepath.Join(merged, "root", "pkg")
	os.MkdirAll(pkg, 0o755)
	for _, f := range []string{debs[0], filepath.Join(binDir, "images", "busybox.aci")} {
		if out, err := exec.Command("cp", f, pkg).CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	// Installed as an administrator would: apt, with the network, which
	// brings in the dependencies.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, "systemd-nspawn", "-q", "-D", merged, "--register=no", "--keep-unit", "--pipe",
		"-E", "DEBIAN_FRONTEND=noninteractive", "sh", "-c", "apt-get update -qq && apt-get install -y -qq /root/pkg/"+filepath.Base(debs[0]))
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("apt-get install: %v\n%s", err, out)
	}
	syscall.Unmount(merged, syscall.MNT_DETACH)
	// The installed tree, booted (the overlay's upper dir holds it).
	if err := syscall.Mount("overlay", merged, "overlay", syscall.MS_RDONLY, fmt.Sprintf("lowerdir=%s:%s", upper, root)); err != nil {
		t.Fatal(err)
	}
	h := systemdhost.Boot(t, systemdhost.Options{Root: merged, Name: "debtest"})
	run := func(args ...string) string {
		t.Helper()
		out, errs, err := h.Run(context.Background(), args...)
		if err != nil {
			t.Fatalf("%v\n%s%s", err, out, errs)
		}
		return out
	}
	mustContain(t, run("getent", "group", "skiff"), "skiff:")
	mustContain(t, run("systemctl", "is-enabled", "skiff-gc.timer"), "enabled")
	run("test", "-f", "/usr/share/man/man1/skiff-run.1.gz") // gzipped, as Debian policy wants
	run("test", "-f", "/usr/share/bash-completion/completions/skiff")
	mustContain(t, run("skiff", "version"), "stage1 ns: skiff.dev/stage1-ns", "stage1 kvm: skiff.dev/stage1-kvm", "/usr/lib/skiff/stage1-kvm.aci")
	out := run("skiff", "--insecure-options=image", "run", "/root/pkg/busybox.aci", "--exec=/bin/echo", "--", "hello-from-the-deb")
	if !strings.Contains(out, "busybox[") || !strings.Contains(out, "hello-from-the-deb") {
		t.Errorf("the pod's output: %q", out)
	}
}
