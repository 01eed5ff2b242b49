//go:build e2e

package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
)

// stage1s lists the real stage1s the pod tests run on. Each must be built
// (make build): a missing image fails the test rather than skipping it.
var stage1s = []string{"ns", "kvm"}

// forEachStage1 runs fn as one subtest per real stage1.
func forEachStage1(t *testing.T, fn func(t *testing.T, e *env, stage1 string)) {
	for _, s := range stage1s {
		t.Run(s, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(toolDir, "stage1-"+s+".aci")); err != nil {
				t.Fatalf("bin/stage1-%s.aci missing: run `make build` first", s)
			}
			fn(t, newEnv(t), s)
		})
	}
}

func TestConformanceNS(t *testing.T)  { conformance(t, "ns") }
func TestConformanceKVM(t *testing.T) { conformance(t, "kvm") }

// probeRun runs the probe as one app and returns its combined output.
func probeRun(t *testing.T, e *env, stage1 string, podFlags []string, appFlags []string, probeArgs ...string) (string, int) {
	t.Helper()
	args := append([]string{"run", "--stage1=" + stage1}, podFlags...)
	args = append(args, image(t, "probe.aci"))
	args = append(args, appFlags...)
	args = append(args, "--")
	args = append(args, probeArgs...)
	out, errs, code := e.run(args...)
	return out + errs, code
}

// mustContain fails unless every want is in out.
func mustContain(t *testing.T, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
}

func mustNotContain(t *testing.T, out string, nots ...string) {
	t.Helper()
	for _, w := range nots {
		if strings.Contains(out, w) {
			t.Errorf("output has %q:\n%s", w, out)
		}
	}
}

func TestEnvironment(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		envFile := filepath.Join(t.TempDir(), "env")
		os.WriteFile(envFile, []byte("# comment\nFROM_FILE=file\nBOTH=file\n"), 0o644)
		out, code := probeRun(t, e, s, nil,
			[]string{"--set-env=BOTH=flag", "--set-env=PROBE_IMAGE_ENV=overridden", "--set-env-file=" + envFile},
			"-print-env=FROM_FILE", "-print-env=BOTH", "-print-env=PROBE_IMAGE_ENV", "-print-env=AC_APP_NAME", "-print-env=PATH")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "FROM_FILE=file", "BOTH=flag", "PROBE_IMAGE_ENV=overridden", "AC_APP_NAME=probe", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
		// The image's env wins over an inherited variable.
		out, _ = probeRun(t, e, s, []string{"--inherit-env"}, nil, "-print-env=PROBE_IMAGE_ENV", "-print-env=HOME")
		mustContain(t, out, "PROBE_IMAGE_ENV=from-image", "HOME=")
	})
}

func TestExecAndArgs(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, code := probeRun(t, e, s, nil, nil, "-print-args", "--", "one", "two words")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "ARGC=2", "ARG=one", "ARG=two words")
		out, _, code = e.run("run", "--stage1="+s, image(t, "probe.aci"), "--exec=/bin/echo", "--", "exec-override")
		if code != 0 || !strings.Contains(out, "exec-override") {
			t.Errorf("--exec: exit %d\n%s", code, out)
		}
	})
}

func TestUserGroup(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		tests := []struct {
			flags []string
			want  []string
		}{
			{[]string{"--user=1000", "--group=100"}, []string{"UID=1000", "GID=100"}},
			{[]string{"--user=user", "--group=users"}, []string{"UID=1000", "GID=100", "USERNAME=user"}},
			{nil, []string{"UID=0", "GID=0"}},
		}
		for _, tt := range tests {
			out, code := probeRun(t, e, s, nil, tt.flags, "-print-user")
			if code != 0 {
				t.Fatalf("%v: exit %d:\n%s", tt.flags, code, out)
			}
			mustContain(t, out, tt.want...)
		}
		out, code := probeRun(t, e, s, nil, []string{"--user=nosuchuser"}, "-print-user")
		if code == 0 || !strings.Contains(out, "nosuchuser") {
			t.Errorf("unknown user: exit %d, output should name it:\n%s", code, out)
		}
	})
}

func TestCapabilities(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, _ := probeRun(t, e, s, nil, nil, "-print-caps")
		mustContain(t, out, "CAPBND=00000000a80425fb", "CAPEFF=00000000a80425fb")
		out, _ = probeRun(t, e, s, nil, []string{"--caps-retain=CAP_NET_BIND_SERVICE,CAP_CHOWN"}, "-print-caps")
		mustContain(t, out, "CAPBND_NAMES=CAP_CHOWN,CAP_NET_BIND_SERVICE\n")
		out, _ = probeRun(t, e, s, nil, []string{"--caps-remove=CAP_NET_RAW,CAP_MKNOD"}, "-print-caps")
		mustNotContain(t, out, "CAP_NET_RAW", "CAP_MKNOD")
		mustContain(t, out, "CAP_CHOWN")
		out, _ = probeRun(t, e, s, nil, []string{"--no-new-privileges"}, "-print-nnp")
		mustContain(t, out, "NONEWPRIVS=1")
	})
}

func TestMemoryLimit(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, code := probeRun(t, e, s, nil, []string{"--memory=64Mi"}, "-print-memlimit")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "MEMLIMIT=67108864")
	})
}

func TestMaskedPaths(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		// A masked file reads as /dev/null, a masked directory as an empty
		// read-only one.
		out, _ := probeRun(t, e, s, nil, nil, "-check-masked=/proc/timer_list")
		mustContain(t, out, "MASKED_TYPE=chardev", "MASKED_EMPTY=true")
		out, _ = probeRun(t, e, s, nil, nil, "-check-masked=/sys/firmware")
		mustContain(t, out, "MASKED_TYPE=dir", "MASKED_EMPTY=true", "MASKED_WRITABLE=false")
		out, code := probeRun(t, e, s, nil, nil, "-write-file=/proc/sys/kernel/domainname", "-content=x")
		if code == 0 {
			t.Errorf("wrote /proc/sys:\n%s", out)
		}
		mustContain(t, out, "read-only file system")
	})
}

func TestVolumes(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		host := t.TempDir()
		os.WriteFile(filepath.Join(host, "from-host"), []byte("host data"), 0o644)
		probe := image(t, "probe.aci")
		busybox := image(t, "busybox.aci")
		// Two apps share an empty volume: the writer writes, the reader waits for it.
		out, errs, code := e.run("run", "--stage1="+s,
			"--volume=shared,kind=empty", "--volume=h,kind=host,source="+host, "--volume=ro,kind=host,source="+host+",readOnly=true",
			probe, "--name=writer", "--mount=volume=shared,target=/shared", "--mount=volume=h,target=/h", "--",
			"-write-file=/shared/note", "-content=from-writer", "-read-file=/h/from-host", "---",
			busybox, "--name=reader", "--mount=volume=shared,target=/shared", "--mount=volume=ro,target=/ro",
			"--exec=/bin/sh", "--", "-c", "for i in $(seq 100); do [ -f /shared/note ] && break; sleep 0.1; done; cat /shared/note; echo; touch /ro/x 2>&1 || echo ro-refused")
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errs)
		}
		mustContain(t, out+errs, "READ_FILE=host data", "from-writer", "ro-refused")
		if _, err := os.Stat(filepath.Join(host, "x")); err == nil {
			t.Errorf("a read-only volume was written through")
		}
		// A host volume written by the pod lands on the host.
		probeRun(t, e, s, []string{"--volume=h,kind=host,source=" + host}, []string{"--mount=volume=h,target=/h"}, "-write-file=/h/from-pod", "-content=pod data")
		if b, _ := os.ReadFile(filepath.Join(host, "from-pod")); string(b) != "pod data" {
			t.Errorf("host volume: from-pod = %q", b)
		}
	})
}

func TestEnterHasAppRestrictions(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		e.start("run", "--stage1="+s, "--uuid-file-save="+save, image(t, "probe.aci"),
			"--user=1000", "--caps-retain=CAP_NET_BIND_SERVICE", "--no-new-privileges", "--", "-sleep=300s")
		var uuid string
		waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
			b, _ := os.ReadFile(save)
			uuid = strings.TrimSpace(string(b))
			if uuid == "" {
				return false
			}
			_, _, code := e.run("status", "--wait-ready=1s", uuid)
			return code == 0
		})
		app, _ := probeRunEnter(t, e, uuid, "/probe", "-print-user", "-print-caps", "-print-nnp", "-print-pid")
		mustContain(t, app, "UID=1000", "CAPBND_NAMES=CAP_NET_BIND_SERVICE\n", "NONEWPRIVS=1")
		mustNotContain(t, app, "CAP_SYS_ADMIN")
		e.mustRun("stop", uuid)
		e.mustRun("status", "--wait", uuid)
	})
}

func probeRunEnter(t *testing.T, e *env, uuid string, cmd ...string) (string, int) {
	t.Helper()
	out, errs, code := e.run(append([]string{"enter", uuid, "--"}, cmd...)...)
	if code != 0 {
		t.Fatalf("enter: exit %d\n%s%s", code, out, errs)
	}
	return out, code
}

func TestStopStatusGC(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		c, _ := e.start("run", "--stage1="+s, "--uuid-file-save="+save, image(t, "probe.aci"), "--", "-sleep=300s")
		var uuid string
		waitFor(t, "the pod to be ready", 2*time.Minute, func() bool {
			b, _ := os.ReadFile(save)
			uuid = strings.TrimSpace(string(b))
			_, _, code := e.run("status", "--wait-ready=1s", uuid)
			return uuid != "" && code == 0
		})
		e.mustRun("stop", uuid)
		out := e.mustRun("status", "--wait", uuid)
		mustContain(t, out, "state=exited", "app-probe=")
		c.Wait()
		logs := e.mustRun("logs", uuid)
		_ = logs
		e.mustRun("rm", uuid)
		if m := mountsUnder(e.dir); len(m) > 0 {
			t.Errorf("mounts left after rm: %v", m)
		}
	})
}

func TestLogs(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		probe := image(t, "probe.aci")
		_, errs, code := e.run("run", "--stage1="+s, "--uuid-file-save="+save,
			probe, "--name=alpha", "--set-env=WHO=alpha-says-hi", "--", "-print-env=WHO", "---",
			probe, "--name=beta", "--set-env=WHO=beta-says-hi", "--", "-print-env=WHO")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		b, _ := os.ReadFile(save)
		uuid := strings.TrimSpace(string(b))
		out := e.mustRun("logs", uuid)
		mustContain(t, out, "alpha[", "WHO=alpha-says-hi", "beta[", "WHO=beta-says-hi")
		out = e.mustRun("logs", "--app=beta", uuid)
		mustContain(t, out, "WHO=beta-says-hi")
		mustNotContain(t, out, "alpha-says-hi")
	})
}

// TestLoudApp checks that an app printing far more than a terminal buffer
// holds is neither blocked nor cut short on its way to run's output.
func TestLoudApp(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		out, errs, code := e.run("run", "--stage1="+s, "--uuid-file-save="+save, image(t, "busybox.aci"), "--exec=/usr/bin/seq", "--", "50000")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errs)
		}
		if n := strings.Count(out, "\n"); n < 50000 || !strings.Contains(out, " 50000\n") {
			t.Errorf("got %d lines, want 50000 ending with 50000; tail: %q", n, out[max(0, len(out)-200):])
		}
		// And the journal keeps every line too (no rate limit drops them).
		b, _ := os.ReadFile(save)
		logs := e.mustRun("logs", "--app=busybox", "--output=cat", strings.TrimSpace(string(b)))
		seen := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
			seen[l] = true
		}
		for i := 1; i <= 50000; i++ {
			if !seen[strconv.Itoa(i)] {
				t.Fatalf("skiff logs lost line %d (of %d lines)", i, strings.Count(logs, "\n"))
			}
		}
		if n := strings.Count(logs, "\n"); n != 50000 {
			t.Errorf("skiff logs has %d lines, want 50000", n)
		}
		// journald took every file it found (stage1-kvm makes its first
		// one): a file it rejects, it renames to *.journal~.
		uuid := strings.TrimSpace(string(b))
		if bad, _ := filepath.Glob(filepath.Join(e.dir, "pods/*", uuid, "stage1/rootfs/var/log/journal/*/*.journal~")); len(bad) > 0 {
			t.Errorf("journald rejected journal files: %q", bad)
		}
	})
}

func TestHostname(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, code := probeRun(t, e, s, []string{"--hostname=podhost"}, nil, "-print-hostname")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "HOSTNAME=podhost")
		save := filepath.Join(t.TempDir(), "uuid")
		out, _ = probeRun(t, e, s, []string{"--uuid-file-save=" + save}, nil, "-print-hostname")
		b, _ := os.ReadFile(save)
		mustContain(t, out, "HOSTNAME=skiff-"+strings.TrimSpace(string(b)))
	})
}

func TestNetNone(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, _, code := e.run("run", "--stage1="+s, "--net=none", image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", "echo IFACES=$(ls /sys/class/net)")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, out)
		}
		mustContain(t, out+"\n", "IFACES=lo\n")
	})
}

// TestEventHandlers checks appc's pre-start and post-stop event handlers:
// they run in the app's root (where /probe is), with the app's volumes and
// restrictions, before the app starts and after it ends.
func TestEventHandlers(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		img := probeVariant(t, t.TempDir(), "probe-handlers", func(a *types.App) {
			a.EventHandlers = []types.EventHandler{
				{Name: "pre-start", Exec: types.Exec{"/probe", "-write-file=/shared/pre", "-content=pre-start ran", "-print-caps"}},
				{Name: "post-stop", Exec: types.Exec{"/probe", "-read-file=/shared/pre", "-write-file=/h/post", "-content=post-stop ran"}},
			}
		}, nil)
		host := t.TempDir()
		out, errs, code := e.run("--insecure-options=image", "run", "--stage1="+s,
			"--volume=shared,kind=empty", "--volume=h,kind=host,source="+host,
			img, "--mount=volume=shared,target=/shared", "--mount=volume=h,target=/h",
			"--caps-retain=CAP_NET_BIND_SERVICE", "--", "-read-file=/shared/pre")
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, out, errs)
		}
		// The app read what pre-start wrote; pre-start had the app's capabilities.
		mustContain(t, out+errs, "READ_FILE=pre-start ran", "CAPBND_NAMES=CAP_NET_BIND_SERVICE\n")
		if b, err := os.ReadFile(filepath.Join(host, "post")); string(b) != "post-stop ran" {
			t.Errorf("post-stop handler: %s/post = %q, %v; want %q", host, b, err, "post-stop ran")
		}
	})
}
