//go:build e2e

package tests

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/podunit"
)

// TestManyApps: a pod with the most apps allowed (podunit.MaxApps, each
// busybox's /bin/true) runs to completion on ns; one more is refused at
// once with one line. (1000 apps: docs/decisions.md, "apps per pod".)
func TestManyApps(t *testing.T) {
	e := newEnv(t)
	busybox := image(t, "busybox.aci")
	apps := func(n int) []string {
		args := []string{"run", "--stage1=ns"}
		for i := range n {
			if i > 0 {
				args = append(args, "---")
			}
			args = append(args, busybox, "--name", fmt.Sprintf("a%d", i), "--exec", "/bin/true")
		}
		return args
	}
	start := time.Now()
	_, errs, code := e.run(apps(podunit.MaxApps + 1)...)
	if lines := errorLines(errs); code != 2 || !strings.Contains(lines[0], "too many apps") || len(lines) > 2 {
		t.Errorf("%d apps: exit %d, stderr %q; want a usage error (exit 2) whose line says too many apps", podunit.MaxApps+1, code, errs)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("refusing took %s", d)
	}
	start = time.Now()
	// e.run ends a run that hangs (5 min); no time is asserted beyond that.
	if out, errs, code := e.run(apps(podunit.MaxApps)...); code != 0 {
		t.Fatalf("%d apps: exit %d\n%s%s", podunit.MaxApps, code, out, errs)
	}
	t.Logf("%d apps ran in %s", podunit.MaxApps, time.Since(start).Round(100*time.Millisecond))
}
