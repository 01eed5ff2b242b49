//go:build e2e

package tests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffpod/skiff/tests/cri"
)

// The CRI tests: critest v1.37.0 against a CRI runtime — containerd 2.4.2 +
// runc as the reference (SKIFF_CRI_REFERENCE=1) and `skiff cri` — pulling
// images built offline (tests/cri/images.sh) from the suite's docker-registry
// by their upstream names, through per-registry mirrors. The tools come from
// tests/cri/tools.sh's cache.

// criTool returns the cached tool name, failing with what to run when it
// is missing.
func criTool(t testing.TB, name string) string {
	t.Helper()
	p, err := cri.Tool(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// criImages pushes critest's images once per test binary.
var criImages struct {
	once sync.Once
	err  error
}

// criRegistry returns the suite's registry (registry(t)) filled with the
// images critest pulls, each under its upstream name's path. The images
// are built once per version of tests/cri/images.sh and cached.
func criRegistry(t *testing.T) string {
	t.Helper()
	addr, _, _ := registry(t)
	criImages.once.Do(func() {
		dir, err := cri.ImageLayout(repoRoot)
		if err == nil {
			err = cri.PushImages(dir, addr)
		}
		criImages.err = err
	})
	if criImages.err != nil {
		t.Fatalf("critest images: %v", criImages.err)
	}
	return addr
}

// runCritest runs critest against the CRI endpoint (unix:///PATH) with the
// phase-1 skip set, the runtime handler (empty: the default) and a ginkgo
// focus (empty: every spec); it reads the JUnit report and logs the counts
// and each failure. The caller decides what counts are acceptable.
func runCritest(t *testing.T, endpoint, handler, focus string) cri.Report {
	t.Helper()
	dir := t.TempDir()
	report, logPath := filepath.Join(dir, "junit.xml"), filepath.Join(dir, "critest.log")
	args := []string{
		"--runtime-endpoint=" + endpoint, "--image-endpoint=" + endpoint,
		"--ginkgo.skip=" + cri.Skip, "--ginkgo.junit-report=" + report,
		"--ginkgo.no-color", "--ginkgo.timeout=50m", "--ginkgo.flake-attempts=2",
	}
	if handler != "" {
		args = append(args, "--runtime-handler="+handler)
	}
	if focus != "" {
		args = append(args, "--ginkgo.focus="+focus)
	}
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 55*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, criTool(t, "critest"), args...)
	c.Dir, c.Stdout, c.Stderr = dir, logf, logf
	shm := cri.ShmIDs()
	start := time.Now()
	runErr := c.Run()
	if err := cri.RemoveShm(shm); err != nil {
		t.Errorf("remove critest's shared memory segments: %v", err)
	}
	f, err := os.Open(report)
	if err != nil {
		t.Fatalf("critest %s: no report (%v; exit: %v); its output ends:\n%s", strings.Join(args, " "), err, runErr, cri.Tail(logPath, 40))
	}
	defer f.Close()
	rep, err := cri.ParseJUnit(f)
	if err != nil {
		t.Fatalf("critest: %v; its output ends:\n%s", err, cri.Tail(logPath, 40))
	}
	what := "every spec"
	if focus != "" {
		what = focus
	}
	t.Logf("critest on %s (handler %q, %s) in %s: %s", endpoint, handler, what, time.Since(start).Round(time.Second), rep)
	for _, f := range rep.Failures {
		t.Logf("  FAILED %s", f)
	}
	if rep.Failed > 0 || len(rep.Failures) > 0 {
		t.Logf("critest's output: %s (kept while the test's temp dir lives)", logPath)
		if b, err := os.ReadFile(logPath); err == nil {
			os.WriteFile(filepath.Join(os.TempDir(), "critest-"+strings.ReplaceAll(t.Name(), "/", "-")+".log"), b, 0o644)
		}
	}
	return rep
}

// startContainerd starts the reference runtime (cri.StartContainerd)
// under a temp dir, its mirrors pointing at criRegistry, and returns its
// CRI endpoint; cleanup removes its pods and undoes what it changed.
func startContainerd(t *testing.T) string {
	t.Helper()
	d, err := cri.StartContainerd(cri.Containerd{Dir: t.TempDir(), Runc: criTool(t, "runc"), CNIBin: "/usr/lib/cni", Registry: criRegistry(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	return d.Endpoint
}

// TestCritestContainerd proves the harness on the reference runtime: critest
// against containerd 2.4.2 + runc 1.5.3 passes every spec of the phase-1 set
// (92 on these machines). Gated: containerd is the reference, not the product.
func TestCritestContainerd(t *testing.T) {
	if os.Getenv("SKIFF_CRI_REFERENCE") != "1" {
		t.Skip("the reference runtime's critest run: set SKIFF_CRI_REFERENCE=1 (tools: tests/cri/tools.sh)")
	}
	rep := runCritest(t, startContainerd(t), "", "")
	passed, failed, skipped, failures := rep.Passed, rep.Failed, rep.Skipped, rep.Failures
	if failed > 0 || len(failures) > 0 || passed == 0 {
		t.Errorf("containerd: %d passed, %d failed, %d skipped; failures:\n%s", passed, failed, skipped, strings.Join(failures, "\n"))
	}
}

// skiffCRI starts `skiff cri` on a socket in a fresh skiff env whose
// registries.conf mirrors every registry critest uses to criRegistry, and
// returns its endpoint.
func skiffCRI(t *testing.T) string {
	t.Helper()
	e := newEnv(t)
	if err := os.MkdirAll(e.config, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.config, "registries.conf"), []byte(cri.RegistriesConf(criRegistry(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "cri.sock")
	// Images by tag are unsigned here: --insecure-options=image, as a
	// kubelet's pulls are (docs/kubernetes.md).
	c := exec.Command(skiffBin, "--dir="+e.dir, "--local-config="+e.config, "--insecure-options=image", "cri", "--listen", sock)
	d, err := cri.Start(c, "unix://"+sock, filepath.Join(t.TempDir(), "skiff-cri.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop skiff cri: %v", err)
		}
	})
	return d.Endpoint
}

// TestCritestSkiff runs critest against `skiff cri`: every spec of the
// phase-1 set on stage1-ns (the default handler), the [Conformance] specs
// with runtime_handler=kvm. Each run is judged against its ledger of known
// failures (tests/cri/known-failures-HANDLER.txt, each spec with its
// reason; docs/kubernetes.md): a failure not in the ledger fails the test;
// a ledger entry whose spec now passes is printed, to be removed (not an
// error: a spec that passes now and then must not turn CI red). The counts
// and every failure are printed either way.
func TestCritestSkiff(t *testing.T) {
	endpoint := skiffCRI(t)
	for _, tc := range []struct{ name, handler, focus string }{
		{"ns", "", ""},
		{"kvm", "kvm", `\[Conformance\]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("cri", "known-failures-"+tc.name+".txt"))
			if err != nil {
				t.Fatal(err)
			}
			known, err := cri.ReadKnown(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			rep := runCritest(t, endpoint, tc.handler, tc.focus)
			t.Logf("skiff cri (%s): %s; %d known failures in the ledger", tc.name, rep, len(known))
			unexpected, fixed := known.Judge(rep.FailedNames, rep.PassedNames)
			if len(unexpected) > 0 {
				t.Errorf("skiff cri (%s): %d failures not in the ledger (regressions):\n%s", tc.name, len(unexpected), strings.Join(unexpected, "\n"))
			}
			if len(fixed) > 0 {
				t.Logf("skiff cri (%s): %d ledger specs now pass: remove them from tests/cri/known-failures-%s.txt:\n%s", tc.name, len(fixed), tc.name, strings.Join(fixed, "\n"))
			}
		})
	}
}

// TestCritestImagesOnSkiff checks the critest images on skiff as it is
// today, without the CRI server: pulled by their upstream names through the
// mirrors of registries.conf, the default image runs the tools critest
// execs in it (ipcs and pgrep come from imagebin), and the nginx image
// serves and carries nginx's title.
func TestCritestImagesOnSkiff(t *testing.T) {
	e := newEnv(t)
	if err := os.MkdirAll(e.config, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.config, "registries.conf"), []byte(cri.RegistriesConf(criRegistry(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := e.run("--insecure-options=image", "run", "--stage1=ns", "docker://registry.k8s.io/e2e-test-images/busybox:1.29-2",
		"--exec=/bin/sh", "--", "-c", "ipcs -m; sleep 30 & echo pgrep=$(pgrep '^sleep$' | wc -l) $!=$(pgrep '^sleep$'); kill $!; id -un; ls /usr/sbin/nginx 2>&1; true")
	if code != 0 {
		t.Fatalf("skiff run busybox: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"------ Shared Memory Segments --------", "pgrep=1 ", "root", "No such file"} {
		if !strings.Contains(out, want) {
			t.Errorf("busybox output lacks %q:\n%s%s", want, out, errs)
		}
	}
	out, errs, code = e.run("--insecure-options=image", "run", "--stage1=ns",
		"docker://registry.k8s.io/e2e-test-images/nginx:1.14-2", "--exec=/bin/sh", "--", "-c",
		"/usr/sbin/nginx -p 8080 & for i in $(seq 50); do [ -f /var/run/nginx.pid ] && wget -qO- http://127.0.0.1:8080/ && break; sleep 0.1; done; "+
			"tr '\\0' ' ' </proc/$(cat /var/run/nginx.pid)/cmdline; echo; pidof nginx")
	if code != 0 {
		t.Fatalf("skiff run nginx: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"Welcome to nginx", "nginx: master process /usr/sbin/nginx -p 8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("nginx output lacks %q:\n%s%s", want, out, errs)
		}
	}
}
