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
// share its CPU: all three are pinned to CPU 0 and the pod runs at nice 5,
// so qemu gets about a seventh of one core whatever else the host does,
// and its boot takes well over the old fixed 10 s hello timeout (which
// failed both attempts here). The boot is slow but moving, and must not
// be killed as hung (docs/stage1-kvm.md, the boot watchdog).
func TestKVMBootUnderLoad(t *testing.T) {
	e := newEnv(t)
	for range 2 {
		burner := exec.Command("taskset", "-c", "0", "sh", "-c", "while :; do :; done")
		if err := burner.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { burner.Process.Kill(); burner.Wait() })
	}
	c := exec.Command("taskset", "-c", "0", "nice", "-n", "5", skiffBin, "--dir="+e.dir, "--local-config="+e.config,
		"run", "--stage1=kvm", image(t, "probe.aci"), "--", "-print-hostname")
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
