//go:build e2e

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
)

// Cases found against rkt's functional tests (rkt/rkt tests/rkt_*_test.go,
// issue 14 item 4), each where rkt ran it: both stage1s for capabilities,
// isolators, image mount points and exit statuses; stage1-ns for the rest
// (stage1-kvm has no --interactive, and the others are stage0's).

// rktVariant is the probe with the isolators and the mount point of rkt's
// tests in its image manifest: a capabilities-retain-set without
// CAP_SETPCAP, a negative oom-score-adj, and a mount point no --volume
// satisfies.
func rktVariant(t *testing.T) string {
	t.Helper()
	caps, err := types.NewLinuxCapabilitiesRetainSet("CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE")
	if err != nil {
		t.Fatal(err)
	}
	capsIso, err := caps.AsIsolator()
	if err != nil {
		t.Fatal(err)
	}
	oom, err := types.NewLinuxOOMScoreAdj(-500)
	if err != nil {
		t.Fatal(err)
	}
	return probeVariant(t, t.TempDir(), "probe-rkt", func(a *types.App) {
		a.Isolators = append(a.Isolators, *capsIso, oom.AsIsolator())
		a.MountPoints = append(a.MountPoints, types.MountPoint{Name: "scratch", Path: "/scratch"})
	}, nil)
}

// TestRktIsolators: --caps-retain (flag or isolator) without CAP_SETPCAP,
// with a capability outside the stage1's default set (CAP_NET_ADMIN, as
// rkt's TestCaps), runs the app with exactly those; a negative
// oom-score-adj runs, clamped with a warning where the host cannot lower
// the score; an image mount point nobody gave a volume gets an empty one
// (0755 root:root, writable). One pod per stage1.
func TestRktIsolators(t *testing.T) {
	img := rktVariant(t)
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, errs, code := e.run("--insecure-options=image", "run", "--stage1="+s,
			image(t, "probe.aci"), "--name=flag", "--caps-retain=CAP_NET_ADMIN,CAP_NET_BIND_SERVICE", "--", "-print-caps", "---",
			img, "--name=iso", "--", "-print-caps", "-read-file=/proc/self/oom_score_adj",
			"-stat=/scratch", "-write-file=/scratch/f", "-content=x")
		all := out + errs
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, all)
		}
		for _, app := range []string{"flag", "iso"} {
			mustContain(t, appLines(all, app), "CAPEFF_NAMES=CAP_NET_BIND_SERVICE,CAP_NET_ADMIN\n",
				"CAPBND_NAMES=CAP_NET_BIND_SERVICE,CAP_NET_ADMIN\n")
		}
		iso := appLines(all, "iso")
		m := regexp.MustCompile(`READ_FILE=(-?\d+)`).FindStringSubmatch(iso)
		if m == nil {
			t.Fatalf("no oom score in the output:\n%s", all)
		}
		if score, _ := strconv.Atoi(m[1]); score != -500 {
			// Only a host that withholds CAP_SYS_RESOURCE may clamp, and says so.
			mustContain(t, all, "oom score -500: this host does not let the pod lower its OOM score")
			if score < -500 || score > 0 {
				t.Errorf("oom score %d: want -500, or clamped to the lowest allowed (0 here)", score)
			}
		}
		mustContain(t, iso, "WRITE_FILE=/scratch/f\n", "STAT_TYPE=dir\n", "STAT_PERM=0755\n", "STAT_UID=0\n", "STAT_GID=0\n")
		mustNotContain(t, all, "operation not permitted")
	})
}

// appLines returns what app wrote in a pod's output (lines tagged
// "app[pid]: "), without the tags.
func appLines(out, app string) string {
	var b strings.Builder
	re := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(app) + `\[\d+\]: (.*)$`)
	for _, l := range strings.Split(out, "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			b.WriteString(m[1] + "\n")
		}
	}
	return b.String()
}

// TestRktSiblingStopped: when one app fails, a sibling the pod stopped for
// it records a clean stop, 0 (rkt), not 143 (busybox sleep dies of the
// SIGTERM); skiff run exits with the failed app's status.
func TestRktSiblingStopped(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		probe := image(t, "probe.aci")
		out, errs, code := e.run("run", "--stage1="+s, "--uuid-file-save="+save,
			image(t, "busybox.aci"), "--name=sleeper", "--exec=/bin/sleep", "--", "120", "---",
			probe, "--name=failer", "--", "-sleep=1s", "-exit=4")
		if code != 4 {
			t.Fatalf("exit %d, want 4 (the failed app's):\n%s%s", code, out, errs)
		}
		uuid, _ := os.ReadFile(save)
		st := e.mustRun("status", strings.TrimSpace(string(uuid)))
		mustContain(t, st, "app-failer=4\n", "app-sleeper=0\n")
	})
}

// TestRktStage1ByID: --stage1 takes the image ID (or a prefix) of a stage1
// imported from its file, as documented; an ID of any other image that
// the run policy refuses is still refused.
func TestRktStage1ByID(t *testing.T) {
	e := newEnv(t)
	e.mustRun("run", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/true")
	var imgs []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json")), &imgs); err != nil {
		t.Fatal(err)
	}
	id := ""
	for _, i := range imgs {
		if i.Name == "skiff.dev/stage1-ns" {
			id = i.ID
		}
	}
	if id == "" {
		t.Fatalf("stage1-ns not in the store: %v", imgs)
	}
	for _, ref := range []string{id, id[:len("sha512-")+16]} {
		if out, errs, code := e.run("run", "--stage1="+ref, image(t, "busybox.aci"), "--exec=/bin/true"); code != 0 {
			t.Errorf("--stage1=%s: exit %d\n%s%s", ref, code, out, errs)
		}
	}
	// An unsigned image fetched as such is no stage1 by ID.
	variant := probeVariant(t, t.TempDir(), "not-a-stage1", func(*types.App) {}, nil)
	idOut := e.mustRun("--insecure-options=image", "fetch", variant)
	other := strings.TrimSpace(idOut)
	if !strings.HasPrefix(other, "sha512-") {
		t.Fatalf("fetch printed %q, want an image ID", idOut)
	}
	_, errs, code := e.run("run", "--stage1="+other, image(t, "busybox.aci"), "--exec=/bin/true")
	if code == 0 || !strings.Contains(errs, "refused by the run policy") {
		t.Errorf("--stage1=<unsigned image>: exit %d, want a refusal by the run policy:\n%s", code, errs)
	}
}

// TestRktPrepareHostname: prepare --hostname reaches the pod (its
// hostname and /etc/hostname); run-prepared --hostname still wins.
func TestRktPrepareHostname(t *testing.T) {
	e := newEnv(t)
	for _, tt := range []struct{ prepare, runPrepared, want string }{
		{"--hostname=prep-host", "", "prep-host"},
		{"--hostname=prep-host", "--hostname=later", "later"},
	} {
		uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", tt.prepare, image(t, "probe.aci"), "--", "-print-hostname", "-read-file=/etc/hostname"))
		args := []string{"run-prepared", uuid}
		if tt.runPrepared != "" {
			args = []string{"run-prepared", tt.runPrepared, uuid}
		}
		out, errs, code := e.run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", args, code, out, errs)
		}
		mustContain(t, out+errs, "HOSTNAME="+tt.want+"\n", "READ_FILE="+tt.want)
	}
}

// TestRktInteractivePipe: --interactive with stdin from a pipe runs the
// app on the pipe: it reads all of it (more than a pipe buffer), then end
// of file, and the pod ends with the app's status.
func TestRktInteractivePipe(t *testing.T) {
	e := newEnv(t)
	input := bytes.Repeat([]byte("0123456789abcdef\n"), 10000) // 170000 bytes
	c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "run", "--stage1=ns", "--interactive",
		image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", "echo got $(wc -c); exit 3")
	c.Stdin = bytes.NewReader(input)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case <-done:
	case <-time.After(90 * time.Second):
		c.Process.Kill()
		<-done
		t.Fatalf("the pod did not end after its stdin did:\n%s", out.String())
	}
	if code := c.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit %d, want the app's 3:\n%s", code, out.String())
	}
	mustContain(t, out.String(), "got 170000")
}

// TestRktDuplicateAppName: two apps of one name are refused with one line
// naming the app (rkt: "is not unique"), before a pod is made.
func TestRktDuplicateAppName(t *testing.T) {
	e := newEnv(t)
	probe := image(t, "probe.aci")
	for _, args := range [][]string{
		{"run", "--stage1=ns", probe, "---", probe},
		{"prepare", "--stage1=ns", probe, "--name=x", "---", image(t, "busybox.aci"), "--name=x"},
	} {
		_, errs, code := e.run(args...)
		lines := errorLines(errs)
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "is not unique") || !strings.Contains(lines[0], "--name") {
			t.Errorf("%v: exit %d, stderr %q; want one line saying the app name is not unique", args[:2], code, errs)
		}
	}
	if out := e.mustRun("list", "--format=json"); len(uuidsIn(out)) != 0 {
		t.Errorf("a refused pod was left behind:\n%s", out)
	}
}

// startSleeper starts a probe pod on stage1-ns that sleeps, with extra run
// flags, and returns the file its UUID was saved in and the UUID, once
// every app has started.
func startSleeper(t *testing.T, e *env, flags ...string) (save, uuid string) {
	t.Helper()
	save = filepath.Join(t.TempDir(), "uuid")
	args := append([]string{"run", "--stage1=ns", "--uuid-file-save=" + save}, flags...)
	e.start(append(args, image(t, "probe.aci"), "--", "-sleep=300s")...)
	waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
		b, _ := os.ReadFile(save)
		uuid = strings.TrimSpace(string(b))
		if uuid == "" {
			return false
		}
		_, _, code := e.run("status", "--wait-ready=1s", uuid)
		return code == 0
	})
	return save, uuid
}

// TestRktUUIDFile: status, enter, cat-manifest, stop and rm take the pod
// from --uuid-file (a file --uuid-file-save wrote), as rkt's do; a UUID
// and the flag together are a usage error.
func TestRktUUIDFile(t *testing.T) {
	e := newEnv(t)
	save, uuid := startSleeper(t, e)
	uf := "--uuid-file=" + save
	mustContain(t, e.mustRun("status", uf), "state=running\n")
	mustContain(t, e.mustRun("enter", uf, "--", "/probe", "-print-env=AC_APP_NAME"), "AC_APP_NAME=probe")
	mustContain(t, e.mustRun("cat-manifest", uf), `"name": "probe"`)
	for _, args := range [][]string{{"status", uf, uuid}, {"stop", uf, uuid}, {"rm", uf, uuid}, {"cat-manifest", uf, uuid}, {"enter", uf, uuid, "--", "/bin/true"}, {"enter", uf, "/bin/true"}, {"status"}} {
		_, errs, code := e.run(args...)
		if code != 2 || !strings.Contains(errs, "skiff: ") {
			t.Errorf("%q: exit %d, want 2 (usage):\n%s", args, code, errs)
		}
	}
	if out := e.mustRun("stop", uf); strings.TrimSpace(out) != uuid {
		t.Errorf("stop --uuid-file printed %q, want %s", out, uuid)
	}
	mustContain(t, e.mustRun("status", "--wait", uf), "state=exited\n")
	e.mustRun("rm", uf)
	if _, errs, code := e.run("status", uf); code != 254 {
		t.Errorf("status of a removed pod: exit %d, want 254:\n%s", code, errs)
	}
}

// TestRktGCMarkOnly: gc --mark-only marks an exited pod as garbage and
// removes nothing, whatever the grace period and the prepared expiry;
// the next gc removes both.
func TestRktGCMarkOnly(t *testing.T) {
	e := newEnv(t)
	exited := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/true"))
	e.mustRun("run-prepared", exited)
	prepared := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/true"))
	e.mustRun("gc", "--mark-only", "--grace-period=0s", "--expire-prepared=0s")
	mustContain(t, e.mustRun("status", exited), "state=exited-garbage\n")
	mustContain(t, e.mustRun("status", prepared), "state=prepared\n")
	e.mustRun("gc", "--grace-period=0s", "--expire-prepared=0s")
	if out := e.mustRun("list", "--format=json"); len(uuidsIn(out)) != 0 {
		t.Errorf("pods left after gc:\n%s", out)
	}
}

// TestRktLogsUnknownApp: logs --app with an app the pod does not have is
// an error naming the pod's apps, not an empty log.
func TestRktLogsUnknownApp(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", busybox, "--name=alpha", "--exec=/bin/true", "---", busybox, "--name=beta", "--exec=/bin/true"))
	e.mustRun("run-prepared", uuid)
	e.mustRun("logs", "--app=beta", uuid)
	out, errs, code := e.run("logs", "--app=gamma", uuid)
	lines := errorLines(errs)
	if code != 254 || out != "" || len(lines) != 1 || !strings.Contains(lines[0], `no app "gamma" (its apps: alpha, beta)`) {
		t.Errorf("logs --app=gamma: exit %d, stdout %q, stderr %q; want 254 and one line naming alpha and beta", code, out, errs)
	}
}

// TestRktEnterTerm: enter gives the command the caller's TERM, over the
// app's, and vt100 when the caller has none, as rkt's enter did.
func TestRktEnterTerm(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		uuid, _ := startProbePod(t, e, s, "-sleep=300s")
		e.mustRun("status", "--wait-ready=2m", uuid)
		for _, tt := range []struct{ term, want string }{{"xterm-skiff", "xterm-skiff"}, {"", "vt100"}} {
			out, errs, code := e.runCtx(context.Background(), []string{"TERM=" + tt.term}, "enter", uuid, "--", "/probe", "-print-env=TERM")
			if code != 0 {
				t.Fatalf("enter: exit %d\n%s%s", code, out, errs)
			}
			mustContain(t, out, "TERM="+tt.want+"\n")
		}
		e.mustRun("stop", "--force", uuid)
	})
}

// TestRktImagesWithoutSeparator: rkt's form, images one after the other
// without ---, each with its flags and its arguments, runs one app per
// image; arguments run to --- as before.
func TestRktImagesWithoutSeparator(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	save := filepath.Join(t.TempDir(), "uuid")
	out, errs, code := e.run("run", "--stage1=ns", "--uuid-file-save="+save,
		busybox, "--name=one", "--exec=/bin/echo", "--", "from-one", "---",
		busybox, "--name=two", "--exec=/bin/true",
		image(t, "probe.aci"), "--", "-print-env=AC_APP_NAME")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	mustContain(t, appLines(out+errs, "one"), "from-one\n")
	mustContain(t, appLines(out+errs, "probe"), "AC_APP_NAME=probe\n")
	mustContain(t, e.mustRun("status", "--uuid-file="+save), "app-one=0\n", "app-probe=0\n", "app-two=0\n")
}

// TestRktMasks: apps see /proc/kcore empty, /sys/firmware empty and
// /proc/sysrq-trigger on a read-only mount (what Docker hides; rkt's
// nspawn made /proc/sys* read-only), on both stage1s. A kernel without
// kcore or sysrq-trigger (this CI host's) has nothing to hide; the KVM
// guest's kernel has both. busybox's test -w says yes to root whatever
// the mount, so the mount's options are read instead.
func TestRktMasks(t *testing.T) {
	script := `test -e /proc/kcore && echo kcore=$(wc -c </proc/kcore) || echo kcore=absent; ` +
		`echo firmware=$(ls -A /sys/firmware | wc -l); ` +
		`test -e /proc/sysrq-trigger && echo sysrq=$(awk '$5=="/proc/sysrq-trigger" {split($6, o, ","); m=o[1]} END {print m}' /proc/self/mountinfo) || echo sysrq=absent`
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, errs, code := e.run("run", "--stage1="+s, image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", script)
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errs)
		}
		all := out + errs
		mustContain(t, all, "firmware=0\n")
		for _, f := range []struct{ name, hidden string }{{"kcore", "0"}, {"sysrq", "ro"}} {
			absent := strings.Contains(all, f.name+"=absent\n")
			if absent && s == "kvm" {
				t.Errorf("the KVM guest has no %s: the test checks nothing", f.name)
			}
			if !absent && !strings.Contains(all, f.name+"="+f.hidden+"\n") {
				t.Errorf("%s is not hidden (want %s=%s):\n%s", f.name, f.name, f.hidden, all)
			}
		}
	})
}

// TestRktListFull: list --full prints whole UUIDs and each app's image
// name and ID, as rkt's; --format=json-pretty works where --format=json does, and json
// is one line, as rkt's.
func TestRktListFull(t *testing.T) {
	e := newEnv(t)
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/true"))
	var imgs []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json-pretty")), &imgs); err != nil {
		t.Fatal(err)
	}
	id := ""
	for _, i := range imgs {
		if i.Name == "skiff.local/busybox" {
			id = i.ID
		}
	}
	if id == "" {
		t.Fatalf("busybox not in the image list: %v", imgs)
	}
	out := e.mustRun("list", "--full")
	mustContain(t, out, "  APP      IMAGE NAME           IMAGE ID  ", uuid+"  busybox  skiff.local/busybox  "+id+"  prepared")
	if short := e.mustRun("list"); strings.Contains(short, uuid) || strings.Contains(short, id) {
		t.Errorf("list without --full has whole IDs:\n%s", short)
	}
	for _, args := range [][]string{{"list"}, {"status", uuid}, {"image", "list"}, {"network", "list"}, {"fsck"}, {"version"}} {
		compact := e.mustRun(append(args, "--format=json")...)
		pretty := e.mustRun(append(args, "--format=json-pretty")...)
		if strings.Count(compact, "\n") != 1 || strings.Count(pretty, "\n") < 2 && pretty != "[]\n" && pretty != "null\n" {
			t.Errorf("%v: json %q, json-pretty %q; want one line, then indented", args, compact, pretty)
		}
		var a, b any
		if json.Unmarshal([]byte(compact), &a) != nil || json.Unmarshal([]byte(pretty), &b) != nil {
			t.Errorf("%v: not JSON:\n%s\n%s", args, compact, pretty)
		}
	}
}

// TestRktMountTarget: --mount target= takes an image mount point's name as
// well as a path (rkt's form), and a mount nested under a mount point is
// on top of it whatever order the flags came in.
func TestRktMountTarget(t *testing.T) {
	e := newEnv(t)
	outer, inner := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outer, "a"), []byte("from-outer"), 0o644)
	os.WriteFile(filepath.Join(inner, "b"), []byte("from-inner"), 0o644)
	out, errs, code := e.run("--insecure-options=image", "run", "--stage1=ns",
		"--volume=outer,kind=host,source="+outer, "--volume=inner,kind=host,source="+inner,
		rktVariant(t), "--mount=volume=inner,target=/scratch/inner", "--mount=volume=outer,target=scratch",
		"--", "-print-mounts", "-read-file=/scratch/inner/b")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	all := out + errs
	mustContain(t, all, "READ_FILE=from-inner\n")
	o, i := strings.Index(all, "MOUNT=/scratch "), strings.Index(all, "MOUNT=/scratch/inner ")
	if o < 0 || i < 0 || i < o {
		t.Errorf("want /scratch (the mount point named scratch) mounted, then /scratch/inner on it:\n%s", all)
	}
	// A volume of another name at the mount point's path by name: the
	// mount point gets it, not an implicit empty volume on top.
	out, errs, code = e.run("--insecure-options=image", "run", "--stage1=ns", "--volume=outer,kind=host,source="+outer,
		rktVariant(t), "--mount=volume=outer,target=scratch", "--", "-read-file=/scratch/a")
	if code != 0 || !strings.Contains(out+errs, "READ_FILE=from-outer\n") {
		t.Errorf("exit %d, want READ_FILE=from-outer:\n%s%s", code, out, errs)
	}
}

// TestRktMtab: an app whose image has no /etc/mtab finds one, a symlink to
// /proc/self/mounts, as rkt made it (stage2's, the same on both stage1s).
func TestRktMtab(t *testing.T) {
	e := newEnv(t)
	out, errs, code := e.run("run", "--stage1=ns", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c",
		`echo mtab=$(readlink /etc/mtab); grep -c " /proc " /etc/mtab | sed s/^/proc-lines=/`)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	mustContain(t, out+errs, "mtab=../proc/self/mounts\n", "proc-lines=1\n")
}

// TestRktImageListFields: image list --fields picks columns in the order
// given (rkt's field names: id, name, size, importtime, lastused; and
// skiff's other columns); an unknown field is a usage error.
func TestRktImageListFields(t *testing.T) {
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", image(t, "busybox.aci")))
	got := e.mustRun("image", "list", "--full", "--no-legend", "--fields=name,id")
	if !strings.HasPrefix(got, "skiff.local/busybox\t"+id) || strings.Count(got, "\n") != 1 || len(got) < 128 {
		t.Errorf("image list --fields=name,id = %q, want the name and %s", got, id)
	}
	mustContain(t, e.mustRun("image", "list", "--fields=id,size,importtime,lastused"), "ID", "SIZE", "IMPORTED", "LAST USED", "never")
	out, errs, code := e.run("image", "list", "--fields=id,latest")
	if code != 2 || out != "" || !strings.HasPrefix(errs, `skiff: --fields: unknown field "latest"`) {
		t.Errorf("unknown field: exit %d, %q %q; want 2 and the error", code, out, errs)
	}
}

// TestRktStage1Flags: rkt's --stage1-path, --stage1-from-dir and
// --stage1-hash pick the stage1 as --stage1 does; two of them, or a value
// of the wrong kind, are usage errors (exit 2) and leave no pod.
func TestRktStage1Flags(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	for _, flag := range []string{"--stage1-path=" + filepath.Join(toolDir, "stage1-ns.aci"), "--stage1-from-dir=stage1-ns.aci"} {
		if out, errs, code := e.run("run", flag, busybox, "--exec=/bin/sh", "--", "-c", "exit 3"); code != 3 {
			t.Errorf("%s: exit %d, want the app's 3\n%s%s", flag, code, out, errs)
		}
	}
	var id string
	for _, l := range strings.Split(e.mustRun("image", "list", "--full", "--no-legend", "--fields=name,id"), "\n") {
		if n, v, _ := strings.Cut(l, "\t"); n == "skiff.dev/stage1-ns" {
			id = v
		}
	}
	if out, errs, code := e.run("run", "--stage1-hash="+id, busybox, "--exec=/bin/true"); id == "" || code != 0 {
		t.Errorf("--stage1-hash=%s: exit %d\n%s%s", id, code, out, errs)
	}
	before := e.mustRun("list", "--no-legend")
	for _, args := range [][]string{
		{"--stage1=kvm", "--stage1-from-dir=stage1-ns.aci"},
		{"--stage1-url=" + filepath.Join(toolDir, "stage1-ns.aci")},
		{"--stage1-from-dir=no-such-stage1.aci"},
	} {
		_, errs, code := e.run(append(append([]string{"run"}, args...), busybox, "--exec=/bin/true")...)
		if code != 2 || !strings.HasPrefix(errs, "skiff: --stage1") {
			t.Errorf("%q: exit %d, %q; want 2 and the error", args, code, errs)
		}
	}
	if after := e.mustRun("list", "--no-legend"); after != before {
		t.Errorf("refused runs left pods:\n%s", after)
	}
}

// TestRktKVMForms: what of TestRktMountTarget and TestRktMtab reaches a
// KVM guest (stage2 runs there), in one pod: a volume by its mount point's
// name with one nested in it, and /etc/mtab.
func TestRktKVMForms(t *testing.T) {
	e := newEnv(t)
	outer, inner := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(inner, "b"), []byte("from-inner"), 0o644)
	out, errs, code := e.run("--insecure-options=image", "run", "--stage1=kvm",
		"--volume=outer,kind=host,source="+outer, "--volume=inner,kind=host,source="+inner,
		rktVariant(t), "--mount=volume=inner,target=/scratch/inner", "--mount=volume=outer,target=scratch",
		"--", "-read-file=/scratch/inner/b", "-stat=/etc/mtab")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	mustContain(t, out+errs, "READ_FILE=from-inner\n", "STAT_LINK=../proc/self/mounts\n")
}
