//go:build e2e

package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
	"github.com/skiffpod/skiff/pkg/vm"
)

var (
	repoRoot  string // the checkout
	binDir    string // where make build put its output
	toolDir   string // this run's fresh skiff binary, beside links to the stage1 images
	skiffBin  string
	stubACI   string // the stub stage1 image
	imagesDir string
)

// TestMain builds skiff and the stub stage1 from the current source, so a
// test never runs a stale binary; the stage1 and test images come from
// `make build`, which `make test` runs first.
func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Getenv(lockerEnv) != "" {
		return lockerMain() // this binary re-run as another user (review_test.go)
	}
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	binDir = filepath.Join(repoRoot, "bin")
	imagesDir = filepath.Join(binDir, "images")
	if os.Geteuid() != 0 {
		fmt.Println("tests: the end-to-end suite needs root (run `make test` as root); skipping")
		return 0
	}
	accel, why, err := chooseAccel()
	if err != nil {
		fmt.Println(err)
		return 1
	}
	os.Setenv("SKIFF_KVM_ACCEL", accel)
	fmt.Printf("tests: stage1-kvm pods run with SKIFF_KVM_ACCEL=%s (%s)\n", accel, why)
	toolDir, err = os.MkdirTemp("", "skiff-e2e-bin-")
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer os.RemoveAll(toolDir)
	defer func() { registryStop() }() // the OCI tests' registry, if started
	skiffBin = filepath.Join(toolDir, "skiff")
	if err := goBuild(skiffBin, "./stage0"); err != nil {
		fmt.Println(err)
		return 1
	}
	for _, s := range []string{"stage1-ns.aci", "stage1-kvm.aci", "debug-tools.aci"} {
		if _, err := os.Stat(filepath.Join(binDir, s)); err == nil {
			os.Symlink(filepath.Join(binDir, s), filepath.Join(toolDir, s))
		}
	}
	if stubACI, err = stage1test.Stub(toolDir); err != nil {
		fmt.Println(err)
		return 1
	}
	return m.Run()
}

// chooseAccel picks the accelerator of the suite's stage1-kvm pods:
// SKIFF_KVM_ACCEL when set to kvm or tcg, else what skiff itself would
// choose on this host (pkg/vm's probe): KVM where it can run a guest, TCG
// where it cannot (no usable /dev/kvm, or a PVM host as in ENV.md).
func chooseAccel() (accel, why string, err error) {
	mode := os.Getenv("SKIFF_KVM_ACCEL")
	h := vm.ProbeHost()
	accel, _, err = vm.ChooseAccel(mode, h)
	if err != nil {
		return "", "", fmt.Errorf("tests: SKIFF_KVM_ACCEL=%q: %w", mode, err)
	}
	why = fmt.Sprintf("probed: /dev/kvm usable %t, PVM host %t", h.KVM, h.PVM)
	if mode == "kvm" || mode == "tcg" {
		why = "from the environment"
	}
	return accel, why, nil
}

func goBuild(out, pkg string) error {
	c := exec.Command("go", "build", "-o", out, pkg)
	c.Dir = repoRoot
	c.Env = append(os.Environ(), "CGO_ENABLED=0", "PATH="+os.Getenv("PATH")+":/usr/local/go/bin")
	if b, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return nil
}

// env is one skiff installation as a test sees it: a data dir and a
// local config dir with the test key trusted.
type env struct {
	t      testing.TB
	dir    string
	config string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	base := t.TempDir()
	e := &env{t: t, dir: filepath.Join(base, "data"), config: filepath.Join(base, "config")}
	e.mustRun("trust", "--prefix", "skiff.local", image(t, "test-key.asc"))
	t.Cleanup(e.cleanup)
	return e
}

// with returns a copy of e that reports to t (a subtest).
func (e *env) with(t testing.TB) *env {
	c := *e
	c.t = t
	return &c
}

// cleanup stops what a failed test left running and removes every pod, so
// no mount outlives the test.
func (e *env) cleanup() {
	out, _, _ := e.run("list", "--format=json")
	if strings.Contains(out, `"running"`) {
		for _, u := range uuidsIn(out) {
			e.run("stop", "--force", u)
		}
	}
	e.run("gc", "--grace-period=0", "--expire-prepared=0")
	for _, u := range uuidsIn(out) {
		e.run("rm", u)
	}
}

// image returns a file from bin/images, failing the test with the make
// target to run when it is missing.
func image(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(imagesDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s missing: run `make build` (make test does) first", p)
	}
	return p
}

// run runs skiff and returns its stdout, stderr and exit status.
func (e *env) run(args ...string) (string, string, int) {
	return e.runCtx(context.Background(), nil, args...)
}

func (e *env) runCtx(ctx context.Context, extraEnv []string, args ...string) (string, string, int) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	full := append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)
	c := exec.CommandContext(ctx, skiffBin, full...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	c.Env = append(os.Environ(), extraEnv...)
	err := c.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatalf("skiff %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// mustRun runs skiff and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != 0 {
		e.t.Fatalf("skiff %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// start runs skiff in the background; the returned func waits for it.
func (e *env) start(args ...string) (*exec.Cmd, *bytes.Buffer) {
	e.t.Helper()
	full := append([]string{"--dir=" + e.dir, "--local-config=" + e.config}, args...)
	c := exec.Command(skiffBin, full...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	if err := c.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		if c.ProcessState == nil {
			c.Process.Kill()
			c.Wait()
		}
	})
	return c, &out
}

func uuidsIn(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '"' || r == '\n' || r == ' ' }) {
		if len(f) == 36 && strings.Count(f, "-") == 4 {
			out = append(out, f)
		}
	}
	return out
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountsUnder lists mount points below dir.
func mountsUnder(dir string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && strings.HasPrefix(f[4], dir) {
			out = append(out, f[4])
		}
	}
	return out
}
