//go:build e2e

package tests

import (
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
