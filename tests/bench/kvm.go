package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/vm"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func benchKVM(ctx context.Context, cfg config) error {
	aci := filepath.Join(filepath.Dir(cfg.skiff), "stage1-kvm.aci")
	if _, err := os.Stat(aci); errors.Is(err, fs.ErrNotExist) {
		fmt.Printf("\nstage1-kvm: %s not built\n", filepath.Join(filepath.Base(filepath.Dir(cfg.skiff)), "stage1-kvm.aci"))
		return nil
	}
	if err := needTools(map[string]string{"qemu-system-x86_64": "qemu-system-x86", "strace": "strace"}); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	accel := cfg.accel
	if accel == "" {
		var err error
		if accel, err = vm.AccelFromEnv(log); err != nil {
			return err
		}
	}
	env := []string{"SKIFF_KVM_ACCEL=" + accel} // the same accelerator for both
	p, err := setupPods(ctx, cfg)
	if err != nil {
		return err
	}
	// No network, as the ns rows (issue 16): its cost is the net section's.
	skiffRun := p.skiff("run", "--stage1=kvm", "--net=none", filepath.Join(cfg.images, "busybox.aci"), "--exec=/bin/true")
	// Warm-up: imports and renders the stage1 image, whose kernel and
	// initramfs the bare boot then uses.
	if _, err := output(ctx, env, cfg.skiff, skiffRun...); err != nil {
		return err
	}
	guest := filepath.Join(p.dir, "stage1-kvm")
	if _, err := os.Stat(guest); err != nil {
		if _, err := output(ctx, nil, cfg.skiff, p.skiff("image", "extract", "--rootfs-only", "skiff.dev/stage1-kvm", guest)...); err != nil {
			return err
		}
	}
	vmDir := filepath.Join(p.dir, "vm")
	if err := os.MkdirAll(vmDir, 0o755); err != nil {
		return err
	}
	// The same VM shape as skiff gives the pod (one app, no limits).
	mem, cpus := kvm.Size([]podunit.App{{Name: "busybox"}}, runtime.NumCPU())
	vcfg := vm.Config{
		MemoryMiB: mem, CPUs: cpus,
		Kernel: filepath.Join(guest, "skiff/kvm/vmlinux"), Initrd: filepath.Join(guest, "skiff/kvm/initramfs.cpio"),
		Share: p.rootfs, Accel: accel,
		ConsoleLog: filepath.Join(vmDir, "console.log"), AgentSocket: filepath.Join(vmDir, "agent.sock"),
	}
	var hellos []time.Duration
	cs := []contender{
		{"skiff run --stage1=kvm", func() (time.Duration, error) {
			d, err := timeCmd(ctx, env, cfg.skiff, skiffRun...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		{"bare qemu (pkg/vm)", func() (time.Duration, error) {
			d, hello, err := bareBoot(ctx, vcfg, log)
			hellos = append(hellos, hello)
			return d, err
		}},
	}
	if cfg.base != "" {
		if _, err := output(ctx, env, cfg.base, skiffRun...); err != nil {
			return err
		}
		cs = append(cs, contender{"skiff run --stage1=kvm (-base)", func() (time.Duration, error) {
			d, err := timeCmd(ctx, env, cfg.base, skiffRun...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}})
	}
	runs, err := interleave(cfg.kvmN, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, fmt.Sprintf("stage1-kvm: /bin/true in busybox, accel %s, %d MiB, %d vCPUs", accel, mem, cpus),
		cs, runs, 1)
	h := summarize(hellos)
	fmt.Printf("bare qemu: boot to the guest init's hello %s (p10 %s, p90 %s); then /bin/true over the agent, poweroff\n",
		ms(h.median), ms(h.p10), ms(h.p90))
	target(os.Stdout, "skiff run --stage1=kvm ≤ 1.25× bare qemu", ratio(sums[0].median, sums[1].median), 1.25)

	// --debug makes the guest's systemd report its steps on the console,
	// which gives the in-guest breakdown, at the price of its log output.
	evs, err := traceRun(ctx, p.dir, env, cfg.skiff, append([]string{"--debug"}, skiffRun...)...)
	if err != nil {
		return err
	}
	printBreakdown(os.Stdout, "stage1-kvm breakdown of one traced skiff --debug run (slower than the median):", evs, []phase{
		{"stage0: fetch from cache, prepare pod, exec stage1", regexp.MustCompile(`^exec .*/skiff/run `)},
		{"stage1-kvm run: bundles, exec qemu", regexp.MustCompile(`^exec \S*qemu-system-x86_64 `)},
		{"qemu start, kernel, guest init: to its hello", regexp.MustCompile(`^out .*guest booted`)},
		{"guest init: mount the share, exec systemd", regexp.MustCompile(`^out Welcome to `)},
		{"systemd in the guest, to the app unit's start", regexp.MustCompile(`^out .*Starting skiff-app-`)},
		{"stage2, the app, pod ready: to shutdown's start", regexp.MustCompile(`^out .*Stopped skiff-app-`)},
		{"guest shutdown: systemd, kernel power-off", regexp.MustCompile(`^out .*reboot: Power down`)},
		{"qemu exit", regexp.MustCompile(`^exit \S*qemu-system-x86_64$`)},
		{"stage1 after qemu: exit statuses", regexp.MustCompile(`^exit .*/skiff/run$`)},
	})
	return p.gc(ctx, cfg)
}

// bareBoot boots cfg through pkg/vm, as stage1-kvm does, but with no pod
// and no systemd: the guest init's hello, /bin/true run by the guest
// agent, a poweroff. It returns the whole time and the time to the hello.
func bareBoot(ctx context.Context, cfg vm.Config, log *slog.Logger) (total, hello time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	start := time.Now()
	v, err := vm.Start(ctx, cfg, log)
	if err != nil {
		return 0, 0, err
	}
	defer v.Kill()
	hello = time.Since(start)
	if code, err := v.Run(ctx, "/bin/true"); err != nil {
		return 0, hello, err
	} else if code != 0 {
		return 0, hello, fmt.Errorf("run /bin/true in the guest: status %d", code)
	}
	if err := v.Poweroff(ctx); err != nil {
		return 0, hello, err
	}
	if err := v.Wait(); err != nil {
		return 0, hello, err
	}
	return time.Since(start), hello, nil
}
