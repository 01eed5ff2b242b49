//go:build e2e

package tests

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKVMBootUnderLoad runs a KVM pod while two CPU-burning processes
// keep both of the host's cores busy, with skiff (and so qemu) at nice 10
// below them: the guest gets about a tenth of a core and its boot takes
// several times the old fixed 10 s hello timeout. A boot that is slow but
// moving must not be killed (docs/stage1-kvm.md, boot watchdog).
func TestKVMBootUnderLoad(t *testing.T) {
	e := newEnv(t)
	for range 2 {
		burner := exec.Command("sh", "-c", "while :; do :; done")
		if err := burner.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { burner.Process.Kill(); burner.Wait() })
	}
	args := []string{"-n", "10", skiffBin, "--dir=" + e.dir, "--local-config=" + e.config,
		"run", "--stage1=kvm", image(t, "probe.aci"), "--", "-print-hostname"}
	c := exec.Command("nice", args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	if err := c.Run(); err != nil {
		t.Fatalf("kvm pod under load: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "HOSTNAME=skiff-") {
		t.Errorf("probe output missing:\n%s", out.String())
	}
	t.Logf("pod ran in %s under load", time.Since(start).Round(100*time.Millisecond))
}
