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
// keep both of the host's cores busy: the guest boots slowly, but it
// moves, and must not be killed as hung (docs/stage1-kvm.md, the boot
// watchdog). The old fixed 10 s hello timeout failed here whenever the
// host was busy besides (as on a shared CI machine).
func TestKVMBootUnderLoad(t *testing.T) {
	e := newEnv(t)
	for range 2 {
		burner := exec.Command("sh", "-c", "while :; do :; done")
		if err := burner.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { burner.Process.Kill(); burner.Wait() })
	}
	c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config,
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
