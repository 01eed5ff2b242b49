package kvm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/skiffpod/skiff/pkg/journal"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/pkg/vm"
)

// RunOptions are the run entrypoint's flags and what it is wired to.
type RunOptions struct {
	pod.RunArgs
	Bundle   podunit.BundleFunc
	GuestDir string // holds vmlinux and initramfs.cpio; "" means kvm/ beside the binary
	QEMU     string // "" finds qemu-system-x86_64 in PATH
}

// Guest sizing: what the kernel, systemd and journald need, and what an
// app without a memory limit gets.
const (
	guestOverheadMiB = 256
	appDefaultMiB    = 256
)

// Run runs the pod whose directory is the working directory until it
// ends, and returns the status the run entrypoint exits with: the first
// failed app's, 0 when all succeeded, pod.ExitFailure on its own
// failure.
func Run(log *slog.Logger, o RunOptions) int {
	st, err := run(log, o)
	if err != nil {
		log.Error("run pod", "err", err)
		return pod.ExitFailure
	}
	return st
}

func run(log *slog.Logger, o RunOptions) (int, error) {
	start := time.Now()
	if err := stage1kit.KeepLock(); err != nil {
		return 0, err
	}
	if o.Interactive {
		return 0, fmt.Errorf("run: %w: --interactive is not supported by stage1-kvm", ErrUsage)
	}
	switch {
	case o.NetNS != "":
		// The pod's CNI network, through a tap (joinTap, after Prepare).
	case o.Net == "host":
		return 0, fmt.Errorf("run: %w: --net=host: a VM cannot share the host's network stack (use --net=default or none)", ErrUsage)
	case o.Net == "" || o.Net == "default" || o.Net == "none":
		// No network device: loopback only.
	default:
		return 0, fmt.Errorf("run: %w: --net=%q", ErrUsage, o.Net)
	}
	pm, apps, pass, err := podunit.Prepare(log, o.UUID, false, o.Bundle)
	if err != nil {
		return 0, err
	}
	// The sockets the service manager passed cannot reach the guest, which
	// has no network (forwarding connections over virtio-serial is not built).
	if len(pass) > 0 {
		for _, f := range pass {
			f.Close()
		}
		return 0, fmt.Errorf("run: %w: socket activation (LISTEN_FDS) is not supported by stage1-kvm: the guest has no network", ErrUsage)
	}
	defer func() {
		if err := unmountVolumes(); err != nil {
			log.Warn("clean up", "err", err)
		}
	}()
	if err := volumes(pm); err != nil {
		return 0, err
	}
	// The guest's journald writes over 9p, which lacks fallocate.
	mid := pod.MachineID(o.UUID)
	if err := journal.Precreate(filepath.Join(pod.Stage1Rootfs, "var/log/journal", mid, "system.journal"), mid); err != nil {
		return 0, err
	}
	cfg, err := vmConfig(o, apps)
	if err != nil {
		return 0, err
	}
	if o.NetNS != "" {
		g, err := joinTap(o.NetNS)
		if err != nil {
			return 0, err
		}
		defer g.tap.Close()
		cfg.Tap, cfg.MAC, cfg.Cmdline = g.tap, g.mac, cfg.Cmdline+" "+g.cmdline
		// The guest's root is the stage1 rootfs: its resolv.conf is the pod's.
		if err := copyResolvConf(); err != nil {
			return 0, err
		}
	}
	// The pid is written as soon as qemu runs: the pod is running from then.
	var pidErr error
	cfg.Started = func(pid int) { pidErr = stage1kit.WritePid(pid) }
	v, err := vm.Start(context.Background(), cfg, log)
	if err != nil {
		return 0, err
	}
	log.Debug("guest booted", "after", time.Since(start).Round(time.Millisecond), "qemu", v.Pid())
	if pidErr != nil {
		v.Kill()
		v.Wait()
		return 0, pidErr
	}
	m := register(log, o.UUID, v.Pid())
	stopOnSignal(log, v)
	notifyReady(log, v)
	werr := v.Wait()
	m.unregister(log)
	log.Debug("guest ended", "after", time.Since(start).Round(time.Millisecond))
	st, err := podunit.PodExit(pod.Stage1Rootfs, apps)
	if err != nil {
		return 0, errors.Join(err, werr)
	}
	return st, nil
}

// Size returns the memory (MiB) and vCPUs a pod of apps gets: the apps'
// memory limits (appDefaultMiB for an app without one) plus the guest's
// overhead; as many vCPUs as their CPU limits add up to, rounded up, or,
// when an app has no CPU limit, as many as the host has (such an app may
// use every CPU under stage1-ns too; rkt's KVM stage1 did the same). At
// least one, at most the host's.
func Size(apps []podunit.App, hostCPUs int) (memMiB, cpus int) {
	mem := int64(guestOverheadMiB) << 20
	var milli int64
	unlimited := false
	for _, a := range apps {
		if a.Memory > 0 {
			mem += a.Memory
		} else {
			mem += appDefaultMiB << 20
		}
		milli += a.CPU
		unlimited = unlimited || a.CPU == 0
	}
	cpus = hostCPUs
	if !unlimited {
		cpus = min(max(1, int((milli+999)/1000)), hostCPUs)
	}
	return int((mem + 1<<20 - 1) >> 20), cpus
}

// vmConfig is the VM that runs the pod, sized by Size.
func vmConfig(o RunOptions, apps []podunit.App) (vm.Config, error) {
	dir := o.GuestDir
	if dir == "" {
		var err error
		if dir, err = guestDir(); err != nil {
			return vm.Config{}, fmt.Errorf("find guest kernel: %w", err)
		}
	}
	mem, cpus := Size(apps, runtime.NumCPU())
	cmdline, err := kernelCmdline(o)
	if err != nil {
		return vm.Config{}, err
	}
	return vm.Config{
		QEMU:   o.QEMU,
		Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "initramfs.cpio"),
		Cmdline: cmdline,
		// Relative to the pod directory, which is qemu's working directory.
		Share:     pod.Stage1Rootfs,
		MemoryMiB: mem, CPUs: cpus,
		ConsoleLog: consoleLog, Console: podunit.CRLF(os.Stdout),
		AgentSocket: agentSocket, ControlSocket: controlSocket,
	}, nil
}

// kernelCmdline makes the guest boot systemd from the share, quietly: the
// console carries the apps' output to run's stdout.
func kernelCmdline(o RunOptions) (string, error) {
	// hvc0 (virtio) carries the apps' output; ttyS0 only the boot.
	args := []string{"skiff.init=" + guestInit, "console=hvc0", "printk.time=0"}
	if o.Debug {
		args = append(args, "systemd.log_level=debug", "systemd.show_status=true")
	} else {
		args = append(args, "loglevel=0", "systemd.log_level=crit", "systemd.show_status=false")
	}
	if o.Hostname != "" {
		if strings.ContainsFunc(o.Hostname, func(r rune) bool { return r <= ' ' || r > '~' }) {
			return "", fmt.Errorf("run: %w: --hostname=%q", ErrUsage, o.Hostname)
		}
		args = append(args, "systemd.hostname="+o.Hostname)
	}
	return strings.Join(args, " "), nil
}

// stopOnSignal turns SIGTERM and SIGINT into a clean poweroff of the
// guest, and kills qemu when the guest cannot be asked.
func stopOnSignal(log *slog.Logger, v *vm.VM) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		defer signal.Stop(sigs)
		select {
		case s := <-sigs:
			log.Debug("stop pod", "signal", s)
			if os.Getenv("NOTIFY_SOCKET") != "" {
				daemon.SdNotify(false, daemon.SdNotifyStopping)
			}
			if err := poweroff(); err != nil {
				log.Warn("stop pod cleanly", "err", err)
				v.Kill()
			}
		case <-v.Done():
		}
	}()
}

// notifyReady tells the service manager, when it waits for readiness
// (NOTIFY_SOCKET), that the pod is ready once the guest has written the
// ready marker into the shared tree: every app has started (and has sent
// READY=1 itself, for apps that support notify).
func notifyReady(log *slog.Logger, v *vm.VM) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return
	}
	marker := pod.ReadyFile
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-v.Done():
				return
			case <-tick.C:
			}
			if _, err := os.Stat(marker); err == nil {
				if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
					log.Warn("notify ready", "err", err)
				}
				return
			}
		}
	}()
}
