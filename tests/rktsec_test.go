//go:build e2e

package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/pkg/aci"
)

// rkt's security flags (issue 14 item 5): seccomp groups, the run-time
// --insecure-options, os/arch labels and the device cgroup, from rkt's
// tests/rkt_seccomp_test.go and rkt_os_arch_test.go and rkt's stage1.

// TestRktSeccompGroups: rkt's groups in --seccomp, one app each in one
// pod, on both stage1s: a call outside @rkt/default-whitelist or
// @docker/default-whitelist fails with the chosen errno, one in
// @rkt/default-blacklist or @docker/default-blacklist too; remove
// @appc.io/empty is the default profile (rkt's reading). An unknown
// group is refused before a pod is made.
func TestRktSeccompGroups(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		probe := image(t, "probe.aci")
		args := []string{"run", "--stage1=" + s}
		for _, a := range []struct{ name, seccomp string }{
			{"rktwl", "mode=retain,errno=EXFULL,@rkt/default-whitelist"},
			{"dockerwl", "mode=retain,errno=EXFULL,@docker/default-whitelist"},
			{"rktbl", "mode=remove,errno=EMULTIHOP,@rkt/default-blacklist"},
			{"dockerbl", "mode=remove,errno=EMULTIHOP,@docker/default-blacklist"},
			{"empty", "mode=remove,@appc.io/empty"},
		} {
			args = append(args, probe, "--name="+a.name, "--seccomp="+a.seccomp, "--", "-try-syscalls", "-print-nnp", "-print-env=AC_APP_NAME", "---")
		}
		out, errs, code := e.run(args[:len(args)-1]...)
		all := out + errs
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, all)
		}
		for _, app := range []string{"rktwl", "dockerwl"} {
			mustContain(t, appLines(all, app), "AC_APP_NAME="+app+"\n", "TRY_MOUNT=EXFULL\n", "TRY_KEYCTL=EXFULL\n", "TRY_ADD_KEY=EXFULL\n", "TRY_USERNS=EXFULL\n", "NONEWPRIVS=1\n")
		}
		for _, app := range []string{"rktbl", "dockerbl"} {
			mustContain(t, appLines(all, app), "AC_APP_NAME="+app+"\n", "TRY_MOUNT=EMULTIHOP\n", "TRY_KEYCTL=EMULTIHOP\n", "TRY_USERNS=EMULTIHOP\n", "NONEWPRIVS=1\n")
		}
		// The default profile: EPERM, and no no_new_privs.
		mustContain(t, appLines(all, "empty"), "TRY_MOUNT=EPERM\n", "TRY_KEYCTL=EPERM\n", "NONEWPRIVS=0\n")
		if s != "ns" {
			return
		}
		before := e.mustRun("list", "--no-legend")
		out, errs, code = e.run("run", "--stage1=ns", probe, "--seccomp=mode=remove,@systemd/mount")
		if code != 254 || !strings.Contains(errs, `@systemd/mount: unknown syscall group`) || strings.Count(strings.TrimSpace(errs), "\n") != 0 {
			t.Errorf("unknown group: exit %d, %q; want 254 and one line naming it", code, out+errs)
		}
		if after := e.mustRun("list", "--no-legend"); after != before {
			t.Errorf("a refused run left a pod:\n%s", after)
		}
	})
}

// TestRktInsecureOptions: rkt's run-time --insecure-options on
// stage1-ns, each alone and together: seccomp (no filter: a call the
// app's isolator removes is not refused by it, no no_new_privs, one
// filter fewer),
// capabilities (every capability), paths (no read-only /proc/sys, no
// masked /sys/firmware); ondisk is accepted; an unknown option is a
// usage error naming it. One KVM pod with all-run.
func TestRktInsecureOptions(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	run := func(stage1, opts string) string {
		args := []string{"run", "--stage1=" + stage1}
		if opts != "" {
			args = append([]string{"--insecure-options=" + opts}, args...)
		}
		out, errs, code := e.run(append(args, probe, "--seccomp=mode=remove,errno=EMULTIHOP,add_key",
			"--", "-print-caps", "-print-seccomp", "-print-nnp", "-print-mounts", "-try-syscalls")...)
		if code != 0 {
			t.Fatalf("--insecure-options=%s on %s: exit %d\n%s%s", opts, stage1, code, out, errs)
		}
		return out + errs
	}
	type want struct{ seccomp, caps, paths bool } // turned off
	check := func(t *testing.T, out string, w want, filters string) string {
		t.Helper()
		if filtered := strings.Contains(out, "TRY_ADD_KEY=EMULTIHOP\n"); filtered == w.seccomp {
			t.Errorf("add_key refused by the app's isolator: %v, want %v:\n%s", filtered, !w.seccomp, out)
		}
		if nnp := strings.Contains(out, "NONEWPRIVS=1\n"); nnp == w.seccomp {
			t.Errorf("no_new_privs: %v, want %v (an isolator implies it)", nnp, !w.seccomp)
		}
		if has := strings.Contains(out, "CAP_SYS_ADMIN"); has != w.caps {
			t.Errorf("CAP_SYS_ADMIN held: %v, want %v:\n%s", has, w.caps, out)
		}
		if has := strings.Contains(out, "MOUNT=/proc/sys "); has == w.paths {
			t.Errorf("/proc/sys mounted read-only: %v, want %v:\n%s", has, !w.paths, out)
		}
		if has := strings.Contains(out, "MOUNT=/sys/firmware "); has == w.paths {
			t.Errorf("/sys/firmware masked: %v, want %v:\n%s", has, !w.paths, out)
		}
		m := statusOf(t, out)
		if filters != "" && m["SECCOMP_FILTERS"] == filters {
			t.Errorf("as many seccomp filters (%s) with the app's filter as without", filters)
		}
		return m["SECCOMP_FILTERS"]
	}
	withFilter := check(t, run("ns", ""), want{}, "")
	// No filter at all: nspawn's own is off too (SYSTEMD_SECCOMP=0).
	if f := check(t, run("ns", "image,seccomp,ondisk"), want{seccomp: true}, withFilter); f != "0" {
		t.Errorf("--insecure-options=seccomp on ns: %s seccomp filters, want 0", f)
	}
	check(t, run("ns", "capabilities,paths"), want{caps: true, paths: true}, "")
	check(t, run("ns", "all-run"), want{seccomp: true, caps: true, paths: true}, withFilter)
	check(t, run("kvm", "all-run"), want{seccomp: true, caps: true, paths: true}, "")

	out, errs, code := e.run("--insecure-options=image,bogus", "run", "--stage1=ns", probe)
	if code != 2 || out != "" || !strings.HasPrefix(errs, `skiff: --insecure-options: unknown option "bogus"`) {
		t.Errorf("unknown option: exit %d, %q %q; want 2 and the option named", code, out, errs)
	}
}

// TestRktDeviceCgroup: on stage1-ns an app may mknod a node for one of
// the host's block devices but not open it (the pod's device cgroup, as
// rkt's DevicePolicy=closed); a device given as a host volume opens;
// --insecure-options=paths turns the cgroup off, as in rkt.
func TestRktDeviceCgroup(t *testing.T) {
	blocks, err := os.ReadDir("/sys/dev/block")
	if err != nil || len(blocks) == 0 {
		t.Fatalf("no block device on this host to try: %v", err)
	}
	majMin := strings.Split(blocks[0].Name(), ":")
	given := "/dev/null"
	if _, err := os.Stat("/dev/loop0"); err == nil {
		given = "/dev/loop0"
	}
	e := newEnv(t)
	script := `mknod /dev/disk0 b ` + majMin[0] + ` ` + majMin[1] + ` && echo mknod=ok; ` +
		`head -c 1 /dev/disk0 >/dev/null && echo open=ok || echo open=refused; ` +
		`head -c 1 /dev/given >/dev/null && echo given=ok || echo given=refused`
	for _, tt := range []struct{ opts, open string }{{"", "refused"}, {"paths", "ok"}} {
		args := []string{"run", "--stage1=ns", "--volume=given,kind=host,source=" + given + ",readOnly=true"}
		if tt.opts != "" {
			args = append([]string{"--insecure-options=" + tt.opts}, args...)
		}
		out, errs, code := e.run(append(args, image(t, "busybox.aci"), "--mount=volume=given,target=/dev/given", "--exec=/bin/sh", "--", "-c", script)...)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", tt.opts, code, out, errs)
		}
		mustContain(t, out+errs, "mknod=ok\n", "open="+tt.open+"\n", "given=ok\n")
	}
}

// TestRktOSArch: an ACI labelled for another arch is refused on fetch
// and, fetched for that platform with --platform, on run, with one line
// naming both platforms; nothing is left behind. An OCI image for
// another platform likewise.
func TestRktOSArch(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	arm := filepath.Join(dir, "arm.aci")
	m := schema.BlankImageManifest()
	m.Name = "skiff.local/arm"
	m.Labels = types.Labels{{Name: "os", Value: "linux"}, {Name: "arch", Value: "aarch64"}}
	m.App = &types.App{Exec: types.Exec{"/bin/probe"}, User: "0", Group: "0"}
	os.Mkdir(filepath.Join(dir, "rootfs"), 0o755)
	f, err := os.Create(arm)
	if err != nil {
		t.Fatal(err)
	}
	if err := aci.Write(f, m, filepath.Join(dir, "rootfs")); err != nil {
		t.Fatal(err)
	}
	f.Close()
	oneLine := func(t *testing.T, what, errs string, code int) {
		t.Helper()
		want := "skiff.local/arm is for linux/aarch64, this host is linux/amd64"
		if code != 254 || !strings.Contains(errs, want) || len(errorLines(errs)) != 1 {
			t.Errorf("%s: exit %d, %q; want 254 and one line with %q", what, code, errs, want)
		}
	}
	images := e.mustRun("image", "list", "--no-legend")
	_, errs, code := e.run("--insecure-options=image", "fetch", arm)
	oneLine(t, "fetch", errs, code)
	_, errs, code = e.run("--insecure-options=image", "run", "--stage1=ns", arm)
	oneLine(t, "run", errs, code)
	if after := e.mustRun("image", "list", "--no-legend"); after != images {
		t.Errorf("refused fetches stored an image:\n%s", after)
	}
	id := strings.TrimSpace(e.mustRun("--insecure-options=image", "--platform=linux/arm64", "fetch", arm))
	pods := e.mustRun("list", "--no-legend")
	_, errs, code = e.run("--insecure-options=image", "run", "--stage1=ns", id)
	oneLine(t, "run of the stored image", errs, code)

	// OCI: fetched for arm64 by asking, refused to run here.
	layout := filepath.Join(dir, "layout")
	desc := ociManifest(t, layout, [][]byte{probeBase(t)}, nil, "arm64", map[string]any{"Entrypoint": []string{"/bin/probe"}})
	desc["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "1"}
	ociIndex(t, layout, desc)
	if _, errs, code := e.run("--insecure-options=image", "fetch", "oci:"+layout+":1"); code != 254 || !strings.Contains(errs, "linux/amd64") {
		t.Errorf("fetch of an arm64 OCI image: exit %d, %q", code, errs)
	}
	ociID := strings.TrimSpace(e.mustRun("--insecure-options=image", "--platform=linux/arm64", "fetch", "oci:"+layout+":1"))
	_, errs, code = e.run("--insecure-options=image", "run", "--stage1=ns", ociID)
	if code != 254 || !strings.Contains(errs, "is for linux/arm64, this host is linux/amd64") || len(errorLines(errs)) != 1 {
		t.Errorf("run of an arm64 OCI image: exit %d, %q; want 254 and one line naming both", code, errs)
	}
	if after := e.mustRun("list", "--no-legend"); after != pods {
		t.Errorf("refused runs left pods:\n%s", after)
	}
}
