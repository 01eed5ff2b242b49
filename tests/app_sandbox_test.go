//go:build e2e

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAppSandboxNS is the app sandbox end to end on stage1-ns (docs/app-sandbox.md):
// a pod started with no apps gets two, one is entered, stopped (its exit
// status reaches app status and status, its output the journal) and
// removed, rootfs and mounts included, while the other keeps running;
// bad input is one line and exit 254.
func TestAppSandboxNS(t *testing.T) { testAppSandbox(t, "ns") }

// TestAppSandboxKVM is the same on stage1-kvm: the guest's systemd driven
// through the agent, the added rootfs reaching the guest over 9p.
func TestAppSandboxKVM(t *testing.T) { testAppSandbox(t, "kvm") }

func testAppSandbox(t *testing.T, stage1 string) {
	e := newEnv(t)
	save := filepath.Join(t.TempDir(), "uuid")
	sandbox, out := e.start("app", "sandbox", "--stage1="+stage1, "--net=none", "--uuid-file-save="+save)
	var uuid string
	waitFor(t, "the sandbox's uuid", 60*time.Second, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		return uuid != ""
	})
	podDir := filepath.Join(e.dir, "pods", "run", uuid)

	// Added at once: app add waits for the sandbox to be ready.
	busybox := image(t, "busybox.aci")
	if got := e.mustRun("app", "add", uuid, busybox, "--name=a", "--exec=/bin/sh", "--",
		"-c", `echo hello-a; trap "echo got-term; exit 7" TERM; while true; do sleep 0.1; done`); strings.TrimSpace(got) != "a" {
		t.Errorf("app add printed %q, want the app's name", got)
	}
	// With no app running it stays up.
	time.Sleep(time.Second)
	if st := e.mustRun("status", uuid); !strings.Contains(st, "state=running") {
		t.Fatalf("an empty sandbox did not stay up: %s\n%s", st, out)
	}
	e.mustRun("app", "add", uuid, busybox, "--name=b", "--exec=/bin/sh", "--", "-c", "echo hello-b; exec sleep 1000")
	if l := e.mustRun("app", "list", "--no-legend", uuid); l != "a\tcreated\t-\nb\tcreated\t-\n" {
		t.Errorf("app list = %q", l)
	}
	// list shows the apps as added: its record of the manifest is
	// rewritten with it (docs/pod-lifecycle.md).
	if l := e.mustRun("list", "--no-legend", "--full"); !strings.Contains(l, uuid+"\ta\t") || !strings.Contains(l, "\tb\tskiff.local/busybox\t") {
		t.Errorf("list after app add = %q, want apps a and b of pod %s", l, uuid)
	}
	e.mustRun("app", "start", uuid, "--app=a")
	e.mustRun("app", "start", uuid, "--app=b")
	if st := e.mustRun("app", "status", uuid, "--app=a"); st != "name=a\nstate=running\n" {
		t.Errorf("app status a = %q", st)
	}
	if got := e.mustRun("enter", "--app=a", uuid, "--", "/bin/sh", "-c", "echo entered-$(cat /proc/1/comm) >/in-a; cat /in-a"); !strings.HasPrefix(got, "entered-") {
		t.Errorf("enter a printed %q", got)
	}
	if _, err := os.Stat(filepath.Join(podDir, "stage1/rootfs/opt/stage2/a/rootfs/in-a")); err != nil {
		t.Errorf("what enter wrote is not in a's rootfs: %v", err)
	}

	bad := func(want string, args ...string) {
		t.Helper()
		o, errs, code := e.run(args...)
		if code != 254 || strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "skiff: ") || !strings.Contains(errs, want) {
			t.Errorf("skiff %s: exit %d, stdout %q, stderr %q; want 254 and one line with %q", strings.Join(args, " "), code, o, errs, want)
		}
	}
	bad("already has an app", "app", "add", uuid, busybox, "--name=a", "--exec=/bin/true")
	bad("stop it first", "app", "rm", uuid, "--app=a")
	bad("does not exist", "app", "add", "00000000-0000-0000-0000-000000000000", busybox, "--exec=/bin/true")
	bad("no app", "app", "status", uuid, "--app=nope")
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.limit_in_bytes"); err == nil && stage1 == "ns" {
		// On a cgroup v1 host an added app gets v1 memory and cpu cgroups
		// of its own below the pod's, with its limits; its process is in
		// them; app rm removes them.
		e.mustRun("app", "add", uuid, busybox, "--name=limited", "--memory=64M", "--exec=/bin/sleep", "--", "1000")
		e.mustRun("app", "start", uuid, "--app=limited")
		cg := "/sys/fs/cgroup/memory/skiff/" + uuid + "/limited"
		if got := strings.TrimSpace(readFile(t, cg+"/memory.limit_in_bytes")); got != "64000000" {
			t.Errorf("added app's memory limit: %s", got)
		}
		if procs := strings.TrimSpace(readFile(t, cg+"/cgroup.procs")); procs == "" {
			t.Errorf("the added app is not in its memory cgroup %s", cg)
		}
		e.mustRun("app", "stop", uuid, "--app=limited")
		e.mustRun("app", "rm", uuid, "--app=limited")
		for _, p := range []string{cg, "/sys/fs/cgroup/cpu/skiff/" + uuid + "/limited", filepath.Join(podDir, "stage1/rootfs/skiff/cgroup/limited")} {
			if _, err := os.Lstat(p); !os.IsNotExist(err) {
				t.Errorf("%s left after app rm: %v", p, err)
			}
		}
	}

	e.mustRun("app", "stop", uuid, "--app=a")
	if st := e.mustRun("app", "status", uuid, "--app=a"); st != "name=a\nstate=exited\nexit=7\n" {
		t.Errorf("app status a after stop = %q", st)
	}
	if st := e.mustRun("status", uuid); !strings.Contains(st, "app-a=7\n") || !strings.Contains(st, "state=running") {
		t.Errorf("status after app stop = %q", st)
	}
	// journald writes when it gets to it (over 9p in a VM): poll.
	var logs string
	waitFor(t, "a's output in its journal", 30*time.Second, func() bool {
		logs = e.mustRun("logs", "--app=a", uuid)
		return strings.Contains(logs, "got-term")
	})
	if !strings.Contains(logs, "hello-a") || strings.Contains(logs, "hello-b") {
		t.Errorf("logs --app=a = %q", logs)
	}

	// An exited app starts again, with a fresh status.
	e.mustRun("app", "start", uuid, "--app=a")
	if st := e.mustRun("app", "status", uuid, "--app=a"); st != "name=a\nstate=running\n" {
		t.Errorf("app status a after a second start = %q", st)
	}
	e.mustRun("app", "stop", uuid, "--app=a")
	if st := e.mustRun("app", "status", uuid, "--app=a"); st != "name=a\nstate=exited\nexit=7\n" {
		t.Errorf("app status a after a second stop = %q", st)
	}

	e.mustRun("app", "rm", uuid, "--app=a")
	if l := e.mustRun("list", "--no-legend", "--full"); strings.Contains(l, uuid+"\ta\t") || !strings.Contains(l, uuid+"\tb\t") {
		t.Errorf("list after app rm = %q, want app b alone in pod %s", l, uuid)
	}
	for _, p := range []string{"stage1/rootfs/opt/stage2/a", "overlay/app-a", "stage1/rootfs/etc/systemd/system/skiff-app-a.service", "stage1/rootfs/skiff/status/a"} {
		if _, err := os.Lstat(filepath.Join(podDir, p)); !os.IsNotExist(err) {
			t.Errorf("%s left after app rm: %v", p, err)
		}
	}
	for _, m := range mountsUnder(podDir) {
		if strings.Contains(m, "/opt/stage2/a") {
			t.Errorf("mount left on the host: %s", m)
		}
	}
	if stage1 == "ns" {
		pid := strings.TrimSpace(readFile(t, filepath.Join(podDir, "pid")))
		if mi := readFile(t, fmt.Sprintf("/proc/%s/mountinfo", pid)); strings.Contains(mi, "/opt/stage2/a/") {
			t.Errorf("a's rootfs still mounted in the pod:\n%s", mi)
		}
	}
	if l := e.mustRun("app", "list", "--no-legend", uuid); l != "b\trunning\t-\n" {
		t.Errorf("app list after rm = %q", l)
	}
	if got := e.mustRun("enter", "--app=b", uuid, "--", "/bin/echo", "b-alive"); got != "b-alive\n" {
		t.Errorf("enter b after a's removal = %q", got)
	}
	waitFor(t, "b's output in its journal", 30*time.Second, func() bool {
		return strings.Contains(e.mustRun("logs", "--app=b", uuid), "hello-b")
	})

	// An added app gets the metadata service as a boot app does, and it
	// knows the pod as it is now: b and md, no longer a.
	e.mustRun("app", "add", uuid, busybox, "--name=md", "--exec=/bin/sh", "--", "-c", mdsScript)
	e.mustRun("app", "start", uuid, "--app=md")
	waitFor(t, "md to exit", time.Minute, func() bool {
		return strings.Contains(e.mustRun("app", "status", uuid, "--app=md"), "state=exited")
	})
	var md map[string]string
	waitFor(t, "md's output in its journal", 30*time.Second, func() bool {
		md = outputVars(e.mustRun("logs", "--app=md", uuid))
		return md["WRONG_TOKEN"] != ""
	})
	if md["UUID"] != uuid || md["VERIFY"] != "ok" || md["FORGERY"] != "refused" || md["ANNOTATIONS"] != "[]" {
		t.Errorf("an added app's metadata: %q", md)
	}
	if !strings.HasPrefix(md["ID"], "sha512-") || !strings.Contains(md["POD"], `"id":"`+md["ID"]+`"`) ||
		!strings.Contains(md["IMAGE"], `"name":"skiff.local/busybox"`) {
		t.Errorf("an added app's image id or manifest: %q", md)
	}
	if !strings.Contains(md["POD"], `"name":"md"`) || !strings.Contains(md["POD"], `"name":"b"`) || strings.Contains(md["POD"], `"name":"a"`) {
		t.Errorf("the pod manifest an added app reads is not the pod's now: %s", md["POD"])
	}

	// A pod that is not a sandbox has no app commands.
	plainSave := filepath.Join(t.TempDir(), "uuid")
	e.start("run", "--stage1="+stage1, "--net=none", "--uuid-file-save="+plainSave, busybox, "--exec=/bin/sleep", "--", "1000")
	var plain string
	waitFor(t, "the plain pod's uuid", 60*time.Second, func() bool {
		b, _ := os.ReadFile(plainSave)
		plain = strings.TrimSpace(string(b))
		return plain != ""
	})
	e.mustRun("status", "--wait-ready=120s", plain)
	bad("not an app sandbox", "app", "add", plain, busybox, "--exec=/bin/true")
	e.mustRun("stop", plain)

	e.mustRun("stop", uuid)
	if err := sandbox.Wait(); err != nil {
		t.Errorf("the sandbox's run: %v\n%s", err, out)
	}
	if st := e.mustRun("status", uuid); !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-b=0") {
		t.Errorf("status after stop = %q", st)
	}
}

// TestAppSandboxRefused: what app sandbox refuses before a pod starts, as
// a usage error (exit 2) or one line and 254, leaving no pod behind.
func TestAppSandboxRefused(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"app", "sandbox", "--stage1=ns", image(t, "busybox.aci")}, 2, "takes no image"},
		{[]string{"app", "sandbox", "--stage1=ns", "--interactive"}, 2, "--interactive"},
		{[]string{"app", "sandbox", "--stage1=" + stubACI}, 254, "has no app entrypoints"},
		{[]string{"app", "start", "00000000-0000-0000-0000-000000000000"}, 2, "--app is required"},
	} {
		_, errs, code := e.run(tt.args...)
		if code != tt.code || !strings.HasPrefix(errs, "skiff: ") || !strings.Contains(strings.SplitN(errs, "\n", 2)[0], tt.want) {
			t.Errorf("skiff %s: exit %d, stderr %q; want %d and %q", strings.Join(tt.args, " "), code, errs, tt.code, tt.want)
		}
		if code == 254 && strings.Count(errs, "\n") != 1 {
			t.Errorf("skiff %s: more than one line: %q", strings.Join(tt.args, " "), errs)
		}
	}
	if l := e.mustRun("list", "--format=json"); len(uuidsIn(l)) > 0 {
		t.Errorf("a refused sandbox left a pod: %s", l)
	}
}

// TestAppSandboxUnitCache: stage1-ns adds an app without a daemon-reload
// (systemd loads a unit it does not know at its start). Where systemd's
// cache of the unit directory looks as new as the directory (a file
// written in the same clock tick as systemd's last look, made here by
// setting the directory's mtime back), the start reloads and starts again.
func TestAppSandboxUnitCache(t *testing.T) {
	e := newEnv(t)
	save := filepath.Join(t.TempDir(), "uuid")
	sandbox, out := e.start("app", "sandbox", "--stage1=ns", "--net=none", "--uuid-file-save="+save)
	var uuid string
	waitFor(t, "the sandbox's uuid", 60*time.Second, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		return uuid != ""
	})
	units := filepath.Join(e.dir, "pods", "run", uuid, "stage1", "rootfs", "etc", "systemd", "system")
	busybox := image(t, "busybox.aci")
	e.mustRun("app", "add", uuid, busybox, "--name=a", "--exec=/bin/sleep", "--", "1000")
	e.mustRun("app", "start", uuid, "--app=a") // systemd looks at the directory
	fi, err := os.Stat(units)
	if err != nil {
		t.Fatal(err)
	}
	e.mustRun("app", "add", uuid, busybox, "--name=b", "--exec=/bin/sleep", "--", "1000")
	if err := os.Chtimes(units, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	e.mustRun("app", "start", uuid, "--app=b")
	if st := e.mustRun("app", "status", uuid, "--app=b"); st != "name=b\nstate=running\n" {
		t.Errorf("app status b = %q, want running", st)
	}
	e.mustRun("stop", uuid)
	if err := sandbox.Wait(); err != nil {
		t.Errorf("the sandbox's run: %v\n%s", err, out)
	}
}
