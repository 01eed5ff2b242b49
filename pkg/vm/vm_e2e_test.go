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

// TestBootStallRetries boots a guest that never runs (qemu -S: its vCPU
// stays stopped, as in an early-boot hang): each attempt is killed after
// BootStall without console output or qemu activity, long before the
// overall BootTimeout.
func TestBootStallRetries(t *testing.T) {
	cfg := testConfig(t, guestDir(t), t.TempDir())
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Fatal(err)
	}
	cfg.QEMU = filepath.Join(t.TempDir(), "qemu-paused")
	if err := os.WriteFile(cfg.QEMU, []byte("#!/bin/sh\nexec "+qemu+" -S \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg.BootStall, cfg.BootTimeout, cfg.BootAttempts = 2*time.Second, time.Minute, 2
	start := time.Now()
	_, err = Start(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if !errors.Is(err, ErrBootStalled) {
		t.Fatalf("Start = %v, want ErrBootStalled", err)
	}
	if _, err := os.Stat(cfg.ConsoleLog + ".attempt1"); err != nil {
		t.Errorf("first attempt's console was not kept: %v", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("two stalled attempts took %s, want about 2 x %s", d, cfg.BootStall)
	}
	t.Logf("gave up after %s", time.Since(start).Round(time.Millisecond))
}

// TestBootTimeout: the overall cap ends a boot that is still making
// progress, without a retry.
func TestBootTimeout(t *testing.T) {
	cfg := testConfig(t, guestDir(t), t.TempDir())
	t.Setenv(EnvBootTimeout, "300ms") // far below any TCG boot
	_, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if !errors.Is(err, ErrBootTimeout) || !strings.Contains(err.Error(), EnvBootTimeout) {
		t.Fatalf("Start = %v, want ErrBootTimeout naming %s", err, EnvBootTimeout)
	}
	if _, err := os.Stat(cfg.ConsoleLog + ".attempt1"); err == nil {
		t.Errorf("the overall timeout was retried")
	}
}
