//go:build e2e

package tests

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// rkt's remaining run flags (issue 14 item 5): --cpu-shares,
// --oom-score-adj, --pod-manifest, --ipc and image extract/render
// --rootfs-only, as rkt's functional tests ran them.

// TestRktCPUSharesOOMScore: rkt's TestAppIsolatorCPUShares and
// TestOOMScoreAdj: --cpu-shares and --oom-score-adj after an image set
// that app's isolators (over the image's); a negative score is raised to
// what the host allows, with the warning; values out of range are usage
// errors. On both stage1s, as rkt ran them.
func TestRktCPUSharesOOMScore(t *testing.T) {
	forEachStage1(t, func(t *testing.T, e *env, s string) {
		out, errs, code := e.run("run", "--stage1="+s,
			image(t, "probe.aci"), "--name=shares", "--cpu-shares=12345", "--oom-score-adj=42", "--",
			"-print-cpushares", "-read-file=/proc/self/oom_score_adj", "---",
			image(t, "probe.aci"), "--name=neg", "--oom-score-adj=-50", "--", "-read-file=/proc/self/oom_score_adj")
		all := out + errs
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, all)
		}
		shares := appLines(all, "shares")
		mustContain(t, shares, "READ_FILE=42\n")
		// v1: cpu.shares as given; v2 (systemd's CPUShares= as CPUWeight=): 12345*100/1024.
		if !strings.Contains(shares, "CPUSHARES=12345\nCPUSHARES_FILE=") && !strings.Contains(shares, "CPUSHARES=1205\nCPUSHARES_FILE=") {
			t.Errorf("cpu shares: want 12345 (v1) or weight 1205 (v2):\n%s", all)
		}
		if neg := appLines(all, "neg"); !strings.Contains(neg, "READ_FILE=-50\n") {
			mustContain(t, neg, "READ_FILE=0\n")
			mustContain(t, all, "oom score -50: this host does not let the pod lower its OOM score")
		}
	})
	e := newEnv(t)
	for _, bad := range []string{"--cpu-shares=1", "--cpu-shares=x", "--oom-score-adj=1001", "--oom-score-adj=-1001"} {
		_, errs, code := e.run("run", image(t, "probe.aci"), bad)
		if code != 2 || !strings.Contains(errs, "skiff: "+bad) {
			t.Errorf("%s: exit %d, want 2 and a line naming the flag:\n%s", bad, code, errs)
		}
	}
}

// TestRktIPC: rkt's TestIpc. --ipc=auto and private (and no flag) give
// the pod its own IPC namespace, parent leaves it in the host's, on run
// and run-prepared; any other value is a usage error; stage1-kvm refuses
// parent before a pod is made (a VM has a kernel of its own).
func TestRktIPC(t *testing.T) {
	host, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ipcNS := func(t *testing.T, out string) string {
		t.Helper()
		m := regexp.MustCompile(`IPCNS=(ipc:\[\d+\])`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no IPC namespace in the output:\n%s", out)
		}
		return m[1]
	}
	app := []string{image(t, "busybox.aci"), "--exec=/bin/sh", "--", "-c", `echo IPCNS=$(readlink /proc/self/ns/ipc)`}
	for _, tt := range []struct {
		flag string
		host bool
	}{{"", false}, {"--ipc=auto", false}, {"--ipc=private", false}, {"--ipc=parent", true}} {
		args := []string{"run", "--stage1=ns"}
		if tt.flag != "" {
			args = append(args, tt.flag)
		}
		out, errs, code := e.run(append(args, app...)...)
		if code != 0 {
			t.Fatalf("%s: exit %d:\n%s%s", tt.flag, code, out, errs)
		}
		if ns := ipcNS(t, out+errs); (ns == host) != tt.host {
			t.Errorf("%q: IPC namespace %s, host's %s: want the host's: %v", tt.flag, ns, host, tt.host)
		}
	}
	uuid := strings.TrimSpace(e.mustRun(append([]string{"prepare", "--stage1=ns"}, app...)...))
	out, errs, code := e.run("run-prepared", "--ipc=parent", uuid)
	if code != 0 || ipcNS(t, out+errs) != host {
		t.Errorf("run-prepared --ipc=parent: exit %d, want the host's IPC namespace %s:\n%s%s", code, host, out, errs)
	}
	before := e.mustRun("list", "--no-legend")
	for _, args := range [][]string{
		{"run", "--ipc=supercalifragilisticexpialidocious", image(t, "busybox.aci")},
		{"prepare", "--ipc=parent", image(t, "busybox.aci")},
		{"run", "--stage1=kvm", "--ipc=parent", image(t, "busybox.aci"), "--exec=/bin/true"},
	} {
		_, errs, code := e.run(args...)
		if code != 2 || !strings.Contains(errs, "--ipc") || strings.Count(strings.TrimSpace(errs), "\n") > 1 {
			t.Errorf("%v: exit %d, want 2 and a line about --ipc:\n%s", args, code, errs)
		}
	}
	if after := e.mustRun("list", "--no-legend"); after != before {
		t.Errorf("a refused --ipc left a pod behind:\n%s", after)
	}
}
