package kvm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/journal"
	"github.com/skiffpod/skiff/pkg/metadata"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/pkg/vm"
	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/pkg/vm/forward"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

// Isolator is stage1-kvm's stage1kit.Isolator: a pod is a qemu VM.
type Isolator struct {
	GuestDir string // holds vmlinux and initramfs.cpio; "" means kvm/ beside the binary
	QEMU     string // "" finds qemu-system-x86_64 in PATH
}

var _ stage1kit.Isolator = Isolator{}

// Guest sizing: what the kernel, systemd and journald need, and what an
// app without a memory limit gets.
const (
	guestOverheadMiB = 256
	appDefaultMiB    = 256
)

// Boot prepares the pod whose directory is the working directory and
// boots its VM.
func (i Isolator) Boot(log *slog.Logger, o pod.RunArgs) (stage1kit.Pod, []podunit.App, error) {
	start := time.Now()
	if o.Interactive {
		return nil, nil, fmt.Errorf("run: %w: --interactive is not supported by stage1-kvm", ErrUsage)
	}
	if o.IPC == "parent" {
		return nil, nil, fmt.Errorf("run: %w: --ipc=parent: a VM cannot share the host's IPC namespace", ErrUsage)
	}
	switch {
	case o.NetNS != "":
		// The pod's CNI network, through a tap (joinTap, after Prepare).
	case o.Net == "host":
		return nil, nil, fmt.Errorf("run: %w: --net=host: a VM cannot share the host's network stack (use --net=default or none)", ErrUsage)
	case o.Net == "" || o.Net == "default" || o.Net == "none":
		// No network device: loopback only.
	default:
		return nil, nil, fmt.Errorf("run: %w: --net=%q", ErrUsage, o.Net)
	}
	// Without a pod network the guest has no resolver configuration.
	resolv := "-"
	if o.NetNS != "" {
		resolv = ""
	}
	// The pod's metadata service: run serves it on the streams the guest's
	// agent opens for connections to agent.MetadataAddr (docs/metadata.md).
	svc, err := metadata.ForPod(o.UUID)
	if err != nil {
		return nil, nil, err
	}
	opts := appspec.Options{Hostname: o.Hostname, ResolvConf: resolv, MetadataURL: svc.URL(agent.MetadataAddr)}
	bundle, err := podunit.AppBundle(opts)
	if err != nil {
		return nil, nil, err
	}
	if o.Mutable {
		if err := podunit.WriteAppOptions(opts); err != nil {
			return nil, nil, err
		}
	}
	pm, apps, pass, err := podunit.Prepare(log, o.UUID, false, false, bundle, guestListen)
	if err != nil {
		return nil, nil, err
	}
	// The sockets the service manager passed: their connections are
	// forwarded to the guest's own (forward.go).
	fwd, err := forwardListeners(pass)
	if err != nil {
		return nil, nil, err
	}
	p := &guestPod{log: log, start: start, fwd: fwd}
	v, err := i.boot(log, o, pm, apps, p)
	if err != nil {
		p.cleanup()
		return nil, nil, err
	}
	p.vm, p.machine = v, register(log, o.UUID, v.Pid())
	if p.session, err = forward.Host(log, v.Forward()); err != nil {
		v.Kill()
		p.Wait()
		return nil, nil, err
	}
	go func() {
		if err := svc.Serve(p.session); err != nil {
			select {
			case <-v.Done(): // the session ended with qemu
			default:
				log.Warn("metadata service", "err", err)
			}
		}
	}()
	if len(fwd) > 0 {
		startForward(log, v, p.session, fwd)
	}
	if p.dial, err = serveDial(log, v, p.session); err != nil {
		v.Kill()
		p.Wait()
		return nil, nil, err
	}
	return p, apps, nil
}

// boot starts the VM; what it sets up on the host p undoes.
func (i Isolator) boot(log *slog.Logger, o pod.RunArgs, pm *schema.PodManifest, apps []podunit.App, p *guestPod) (*vm.VM, error) {
	if err := volumes(pm); err != nil {
		return nil, err
	}
	// The guest's journald writes over 9p, which lacks fallocate.
	mid := pod.MachineID(o.UUID)
	if err := journal.Precreate(filepath.Join(pod.Stage1Rootfs, "var/log/journal", mid, "system.journal"), mid); err != nil {
		return nil, err
	}
	cfg, err := i.vmConfig(o, apps)
	if err != nil {
		return nil, err
	}
	if o.NetNS != "" {
		g, err := joinTap(o.NetNS)
		if err != nil {
			return nil, err
		}
		p.tap = g.tap
		cfg.Tap, cfg.MAC, cfg.Cmdline = g.tap, g.mac, cfg.Cmdline+" "+g.cmdline
		// The guest's root is the stage1 rootfs: its resolv.conf is the pod's.
		if err := copyResolvConf(); err != nil {
			return nil, err
		}
	}
	// Always: the metadata service's connections come through it too.
	cfg.ForwardSocket = forwardSocket
	// The pid is written as soon as qemu runs: the pod is running from then.
	var pidErr error
	cfg.Started = func(pid int) { pidErr = stage1kit.WritePid(pid) }
	v, err := vm.Start(context.Background(), cfg, log)
	if err != nil {
		return nil, err
	}
	log.Debug("guest booted", "after", time.Since(p.start).Round(time.Millisecond), "qemu", v.Pid())
	if pidErr != nil {
		v.Kill()
		v.Wait()
		return nil, pidErr
	}
	return v, nil
}

// guestPod is a booted VM and what run set up on the host for it.
type guestPod struct {
	log     *slog.Logger
	start   time.Time
	vm      *vm.VM
	machine *machine           // nil when not registered
	tap     *os.File           // the pod network's, nil without one
	fwd     []forward.Listener // passed sockets forwarded into the guest
	session *forward.Session   // the skiff.fwd stream, once booted
	dial    net.Listener       // dial.sock, once booted
}

var _ stage1kit.Pod = (*guestPod)(nil)

// Wait waits for qemu to exit and undoes what run did on the host.
func (p *guestPod) Wait() error {
	err := p.vm.Wait()
	p.machine.unregister(p.log)
	p.log.Debug("guest ended", "after", time.Since(p.start).Round(time.Millisecond))
	p.cleanup()
	return err
}

func (p *guestPod) cleanup() {
	closeListeners(p.fwd)
	if p.dial != nil {
		p.dial.Close() // removes the socket file
	}
	if p.session != nil {
		p.session.Close()
	}
	if p.tap != nil {
		p.tap.Close()
	}
	if err := unmountVolumes(); err != nil {
		p.log.Warn("clean up", "err", err)
	}
}

// Poweroff asks the guest's systemd, through its agent, for a clean
// poweroff.
func (p *guestPod) Poweroff() error { return poweroff() }

// Kill kills qemu.
func (p *guestPod) Kill() { p.vm.Kill() }

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
func (i Isolator) vmConfig(o pod.RunArgs, apps []podunit.App) (vm.Config, error) {
	dir := i.GuestDir
	if dir == "" {
		var err error
		if dir, err = guestDir(); err != nil {
			return vm.Config{}, fmt.Errorf("find guest kernel: %w", err)
		}
	}
	mem, cpus := Size(apps, runtime.NumCPU())
	if o.Mutable {
		mem += sandboxMiB
	}
	cmdline, err := kernelCmdline(o)
	if err != nil {
		return vm.Config{}, err
	}
	return vm.Config{
		QEMU:   i.QEMU,
		Kernel: filepath.Join(dir, "vmlinux"), Initrd: filepath.Join(dir, "initramfs.cpio"),
		Cmdline: cmdline,
		// Relative to the pod directory, which is qemu's working directory.
		Share:     pod.Stage1Rootfs,
		MemoryMiB: mem, CPUs: cpus,
		ConsoleLog: consoleLog, Console: stage1kit.CRLF(os.Stdout),
		AgentSocket: agentSocket, ControlSocket: controlSocket,
	}, nil
}

// unitPath is the guest systemd's unit search path (SYSTEMD_UNIT_PATH,
// which the kernel passes on to the guest init's environment and the init
// to systemd's, as LD_LIBRARY_PATH, guest.LibDir; systemd starts its
// services with an environment of their own): the pod's units and the
// image's. systemd's default path
// has 13 directories, three of them (/etc/systemd/system*) on the 9p share,
// and it looks for every unit and each of its drop-in directories in
// every one: each a round trip to the host under emulation. The guest has
// no generators, transient or runtime units.
const unitPath = podunit.UnitDir + ":" + podunit.ImageUnitDir

// kernelCmdline makes the guest boot systemd from the share, quietly: the
// console carries the apps' output to run's stdout.
func kernelCmdline(o pod.RunArgs) (string, error) {
	// hvc0 (virtio) carries the apps' output; ttyS0 only the boot. With
	// printk.time on, journald prefixes each line it forwards with the
	// guest's uptime, as stage1-ns's lines on a host with printk times:
	// "[   12.345678] app[5]: line", as rkt.
	args := []string{"skiff.init=" + guestInit, "console=hvc0", "printk.time=1",
		"SYSTEMD_UNIT_PATH=" + unitPath, "LD_LIBRARY_PATH=" + guest.LibDir}
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
