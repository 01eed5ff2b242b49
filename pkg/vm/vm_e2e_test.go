//go:build e2e

package vm

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// guestDir holds vmlinux and initramfs.cpio from stage1-kvm/guest/build.sh.
func guestDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		t.Skip("qemu-system-x86_64 not found: apt-get install -y --no-install-recommends qemu-system-x86")
	}
	dir := os.Getenv("SKIFF_KVM_GUEST")
	if dir == "" {
		dir = "../../bin/.stage1-kvm/guest"
	}
	for _, f := range []string{"vmlinux", "initramfs.cpio"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Skipf("guest kernel missing (%v): run stage1-kvm/guest/build.sh %s or set SKIFF_KVM_GUEST", err, dir)
		}
	}
	return dir
}

// shareWithHello returns a share holding a static /bin/hello.
func shareWithHello(t *testing.T) string {
	t.Helper()
	share := t.TempDir()
	cmd := exec.Command("go", "build", "-o", filepath.Join(share, "bin", "hello"), "./testdata/hello")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hello: %v\n%s", err, out)
	}
	return share
}

func testConfig(t *testing.T, guest, share string) Config {
	run := t.TempDir()
	return Config{
		Kernel: filepath.Join(guest, "vmlinux"), Initrd: filepath.Join(guest, "initramfs.cpio"),
		Share: share, Accel: "tcg",
		ConsoleLog: filepath.Join(run, "console.log"), AgentSocket: filepath.Join(run, "agent.sock"),
	}
}

func TestBootRunPoweroff(t *testing.T) {
	guest := guestDir(t)
	share := shareWithHello(t)
	for _, machine := range []string{"q35", "microvm"} {
		t.Run(machine, func(t *testing.T) {
			os.Remove(filepath.Join(share, "written-by-guest"))
			cfg := testConfig(t, guest, share)
			cfg.Machine = machine
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			vm, err := Start(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer vm.Kill()
			t.Logf("hello after %s", time.Since(start).Round(time.Millisecond))
			code, err := vm.Run(ctx, "/bin/hello", "a", "b")
			if err != nil || code != 2 {
				t.Errorf("Run = %d, %v; want 2, nil", code, err)
			}
			if _, err := vm.Run(ctx, "/no/such/binary"); !errors.Is(err, ErrAgent) {
				t.Errorf("Run(missing binary) error = %v, want ErrAgent", err)
			}
			if err := vm.Poweroff(ctx); err != nil {
				t.Fatal(err)
			}
			if err := vm.Wait(); err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(filepath.Join(share, "written-by-guest")); err != nil || string(b) != "guest was here\n" {
				t.Errorf("file written by guest = %q, %v", b, err)
			}
			if b, _ := os.ReadFile(cfg.ConsoleLog); !strings.Contains(string(b), "hello from the share, args: [a b]") {
				t.Errorf("console lacks the program's output:\n%s", b)
			}
		})
	}
}

func TestBootTimeoutRetries(t *testing.T) {
	cfg := testConfig(t, guestDir(t), t.TempDir())
	cfg.BootTimeout = 200 * time.Millisecond // far below any TCG boot
	start := time.Now()
	_, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if !errors.Is(err, ErrBootTimeout) {
		t.Fatalf("Start = %v, want ErrBootTimeout", err)
	}
	if _, err := os.Stat(cfg.ConsoleLog + ".attempt1"); err != nil {
		t.Errorf("first attempt's console was not kept: %v", err)
	}
	t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))
}
