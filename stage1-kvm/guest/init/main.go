// Command init is PID 1 of a skiff KVM guest. It runs from the initramfs:
// mounts /proc, /sys and /dev, loads the modules listed in
// /lib/modules/order, mounts the pod tree shared over virtio-9p, binds the
// initramfs's copy of the system's binaries over it (/sysroot), configures
// eth0 from skiff.net= when the pod has a network, switches
// into it and says hello to the host on the skiff.agent virtio-serial port.
// Then it execs skiff.init= from the kernel command line (systemd), or,
// without one, serves agent requests itself.
package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	err := run()
	fmt.Fprintln(os.Stderr, "skiff-init:", err)
	// PID 1 must not exit (that panics the kernel); power off instead, which
	// ends qemu.
	unix.Sync()
	time.Sleep(100 * time.Millisecond) // let the console drain
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() error {
	if err := mountEarly(); err != nil {
		return err
	}
	if err := loadModules("/lib/modules/order"); err != nil {
		return err
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("read cmdline: %w", err)
	}
	p := parseCmdline(string(cmdline))
	if err := mountShare(p.tag, "/newroot"); err != nil {
		return err
	}
	if p.net != "" {
		c, err := parseNet(p.net)
		if err == nil {
			err = configureNet(c)
		}
		if err != nil {
			return err
		}
	}
	if p.init != "" {
		// The system handed over to reads its binaries from memory, and
		// its journald writes to the pod tree from the start.
		if err := bindSysroot("/sysroot.list", "/sysroot", "/newroot"); err != nil {
			return err
		}
		if err := mountRun("/newroot"); err != nil {
			return err
		}
		if err := mountAttach("/newroot"); err != nil {
			return err
		}
	}
	port, err := openPort()
	if err != nil {
		return err
	}
	if err := switchRoot("/newroot"); err != nil {
		return err
	}
	return serve(port, p.init)
}

type params struct{ tag, init, net string }

// parseCmdline reads skiff.share= (the 9p mount tag) and skiff.init= (what
// to exec as PID 1 inside the share). The kernel does not pass dotted
// parameters to init, so they are read from /proc/cmdline.
func parseCmdline(s string) params {
	p := params{tag: "skiffroot"}
	for _, f := range strings.Fields(s) {
		if v, ok := strings.CutPrefix(f, "skiff.share="); ok {
			p.tag = v
		} else if v, ok := strings.CutPrefix(f, "skiff.init="); ok {
			p.init = v
		} else if v, ok := strings.CutPrefix(f, "skiff.net="); ok {
			p.net = v
		}
	}
	return p
}
