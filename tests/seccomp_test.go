//go:build e2e

package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDefaultSeccomp checks skiff's default profile (docs/seccomp.md) in
// both stage1s, and that --seccomp turns it off.
func TestDefaultSeccomp(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, code := probeRun(t, e, s, nil, nil, "-print-seccomp", "-print-nnp", "-try-syscalls")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		// No no_new_privs: setuid binaries keep working in a pod.
		mustContain(t, out, "SECCOMP=2\n", "NONEWPRIVS=0\n", "TRY_USERNS=EPERM\n", "TRY_KEYCTL=EPERM\n",
			"TRY_ADD_KEY=EPERM\n", "TRY_VSOCK=EPERM\n", "TRY_MOUNT=EPERM\n")
		out, code = probeRun(t, e, s, nil, []string{"--seccomp=mode=retain,@appc.io/all"}, "-try-syscalls")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "TRY_USERNS=ok\n")
	})
}

// statusLine matches the probe's reports of what /proc/self/status says.
var statusLine = regexp.MustCompile(`(?m)\b((?:CAP(?:INH|PRM|EFF|BND|AMB))|NONEWPRIVS|SECCOMP|SECCOMP_FILTERS)=(\S*)$`)

func statusOf(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, g := range statusLine.FindAllStringSubmatch(out, -1) {
		m[g[1]] = g[2]
	}
	for _, k := range []string{"CAPINH", "CAPPRM", "CAPEFF", "CAPBND", "CAPAMB", "NONEWPRIVS", "SECCOMP"} {
		if _, ok := m[k]; !ok {
			t.Fatalf("no %s in:\n%s", k, out)
		}
	}
	return m
}

// TestEnterSameAsApp checks that a command entered into an app holds what
// the app holds and no more (rkt's CVE-2019-10144): the same seccomp mode
// and filter count, capability sets and no_new_privs, for an app with the
// defaults (root, default profile) and one with a user, a retain set and a
// seccomp isolator.
func TestEnterSameAsApp(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		save := filepath.Join(t.TempDir(), "uuid")
		probe := image(t, "probe.aci")
		report := []string{"-print-caps", "-print-nnp", "-print-seccomp"}
		e.start(append(append([]string{"run", "--stage1=" + s, "--uuid-file-save=" + save,
			probe, "--name=plain", "--"}, report...), append([]string{"-sleep=300s", "---",
			probe, "--name=limited", "--user=1000", "--caps-retain=CAP_NET_BIND_SERVICE",
			"--seccomp=mode=remove,errno=EACCES,mkdir,mkdirat", "--"}, append(report, "-sleep=300s")...)...)...)
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
		for _, app := range []string{"plain", "limited"} {
			var logs string
			waitFor(t, "the app's report", time.Minute, func() bool {
				logs, _, _ = e.run("logs", "--app="+app, "--output=cat", uuid)
				return strings.Contains(logs, "SECCOMP=")
			})
			want := statusOf(t, logs)
			out, errs, code := e.run(append([]string{"enter", "--app=" + app, uuid, "--", "/probe"}, append(report, "-try-syscalls")...)...)
			if code != 0 {
				t.Fatalf("enter %s: exit %d\n%s%s", app, code, out, errs)
			}
			got := statusOf(t, out)
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: enter has %s=%s, the app %s=%s", app, k, got[k], k, v)
				}
			}
			if want["SECCOMP"] != "2" {
				t.Errorf("%s: the app has no seccomp filter", app)
			}
			if app == "plain" {
				mustContain(t, out, "TRY_USERNS=EPERM\n", "TRY_KEYCTL=EPERM\n", "TRY_VSOCK=EPERM\n")
			}
		}
		e.mustRun("stop", uuid)
		e.mustRun("status", "--wait", uuid)
	})
}

// TestPodLimits checks the per-pod task limit (a fork bomb stops at it),
// the default one recorded in the pod manifest, and the journal size cap
// journald took from the pod's configuration.
func TestPodLimits(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		const limit = 64
		save := filepath.Join(t.TempDir(), "uuid")
		out, code := probeRun(t, e, s, []string{"--pids-limit=" + strconv.Itoa(limit), "--uuid-file-save=" + save}, nil, "-fork-bomb=2000")
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		mustContain(t, out, "FORK_ERR=EAGAIN\n")
		m := regexp.MustCompile(`FORK_COUNT=(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no FORK_COUNT in:\n%s", out)
		}
		if n, _ := strconv.Atoi(m[1]); n >= limit {
			t.Errorf("forked %d children, limit %d", n, limit)
		}
		b, _ := os.ReadFile(save)
		uuid := strings.TrimSpace(string(b))
		// journald reports the cap it applies when it opens the journal
		// (a line of its own, which skiff logs leaves out: read as it does).
		dirs, _ := filepath.Glob(filepath.Join(e.dir, "pods/*", uuid, "stage1/rootfs/var/log/journal/*"))
		if len(dirs) != 1 {
			t.Fatalf("pod journal dirs: %q", dirs)
		}
		j, err := exec.Command("journalctl", "--directory="+dirs[0], "--no-pager", "--output=cat").CombinedOutput()
		if err != nil {
			t.Fatalf("journalctl: %v\n%s", err, j)
		}
		mustContain(t, string(j), "max 256.0M")
		conf, err := os.ReadFile(filepath.Join(dirs[0], "../../../../etc/systemd/journald.conf.d/skiff.conf"))
		if err != nil {
			t.Fatal(err)
		}
		mustContain(t, string(conf), "SystemMaxUse=256M\n", "RuntimeMaxUse=16M\n")

		// Without the flag, the default limit is recorded for the stage1.
		save = filepath.Join(t.TempDir(), "uuid")
		if out, code := probeRun(t, e, s, []string{"--uuid-file-save=" + save}, nil); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		b, _ = os.ReadFile(save)
		mustContain(t, e.mustRun("cat-manifest", strings.TrimSpace(string(b))), `"skiff.dev/pids-limit"`, `"4096"`)
	})
}
