//go:build e2e

package tests

import (
	"crypto/rand"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/aci"
)

// bigACI writes an uncompressed ACI with size bytes of random data.
func bigACI(t *testing.T, size int64) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	os.MkdirAll(root, 0o755)
	f, err := os.Create(filepath.Join(root, "blob"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	m := schema.BlankImageManifest()
	m.Name = *types.MustACIdentifier("skiff.local/big")
	out := filepath.Join(t.TempDir(), "big.aci")
	w, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := aci.Write(w, m, root); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkConsistent asserts the store verifies clean and holds only want.
func checkConsistent(t *testing.T, e *env, want ...string) {
	t.Helper()
	if out, _, code := e.run("image", "verify"); code != 0 || !strings.Contains(out, "consistent") {
		t.Errorf("store not consistent (exit %d):\n%s", code, out)
	}
	out := e.mustRun("image", "list", "--no-legend", "--full")
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("image list lacks %s:\n%s", w, out)
		}
	}
	if got := len(strings.Fields(strings.TrimSpace(out))) > 0; got && len(want) == 0 {
		t.Errorf("unexpected images:\n%s", out)
	}
}

func TestKilledMidFetch(t *testing.T) {
	e := newEnv(t)
	busybox := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "busybox.aci")))
	big := bigACI(t, 512<<20)
	for _, after := range []time.Duration{50 * time.Millisecond, 300 * time.Millisecond} {
		c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "--insecure-options=image", "fetch", big)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(after)
		c.Process.Kill()
		c.Wait()
		checkConsistent(t, e, busybox)
	}
	// Leftovers may only be temp files inside the data dir, which image gc removes.
	e.mustRun("image", "gc", "--grace-period=0")
	checkConsistent(t, e, busybox)
	// And the same image imports fine afterwards.
	e.mustRun("--insecure-options=image", "fetch", big)
}

func TestFullDisk(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", e.dir, "tmpfs", 0, "size=48m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(e.dir, unix.MNT_DETACH) })
	busybox := strings.TrimSpace(e.mustRun("fetch", "--full", image(t, "busybox.aci")))
	_, errs, code := e.run("--insecure-options=image", "fetch", bigACI(t, 64<<20))
	if code != 254 || !strings.Contains(errs, "no space left on device") {
		t.Fatalf("fetch onto a full disk: exit %d, stderr %q; want 254 naming the cause", code, errs)
	}
	if lines := errorLines(errs); len(lines) != 1 {
		t.Errorf("want a one-line error, got:\n%s", errs)
	}
	checkConsistent(t, e, busybox)
	// Nothing of the failed import is left taking space.
	var st unix.Statfs_t
	unix.Statfs(e.dir, &st)
	if free := int64(st.Bavail) * st.Bsize; free < 40<<20 {
		t.Errorf("only %d MB free after the failed import: its data was left behind", free>>20)
	}
}
