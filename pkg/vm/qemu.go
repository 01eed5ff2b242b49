package vm

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// Config describes one VM. Zero values get the defaults noted.
type Config struct {
	QEMU    string // default "qemu-system-x86_64"
	Kernel  string // uncompressed PVH vmlinux
	Initrd  string
	Cmdline string // appended to the kernel command line built here

	Share    string // host directory that becomes the guest's root (virtio-9p)
	ShareTag string // default "skiffroot"

	// Tap, when set, is an open tap device (fd 3 in qemu) behind the
	// guest's virtio-net device, which gets MAC; without it the guest has
	// no network device.
	Tap *os.File
	MAC string

	MemoryMiB int    // default 256
	CPUs      int    // default 1
	Accel     string // "kvm" or "tcg"; "" resolves SKIFF_KVM_ACCEL (see ChooseAccel)
	Machine   string // "microvm" (default) or "q35"
	// TSCkHz, under TCG, is passed as tsc_early_khz (Start measures it when
	// 0). microvm has no HPET or PM timer, so on a busy host the guest's
	// TSC calibration against the emulated PIT fails and ~25 % of boots
	// hung in early timer setup; with the rate given, 0 of 30 did.
	TSCkHz int

	ConsoleLog  string    // file receiving the serial console (ttyS0)
	Console     io.Writer // also receives the console, when set
	AgentSocket string    // unix socket the host listens on; qemu connects to it
	// ControlSocket, when set, is a unix socket qemu listens on and joins
	// to a second port, agent.ControlPortName: any host process can then
	// talk to a guest-side server, one connection at a time.
	ControlSocket string
	// ForwardSocket, when set, is a unix socket the host listens on, as
	// for AgentSocket, joined to port agent.ForwardPortName; VM.Forward is
	// that connection (package forward).
	ForwardSocket string

	// Started, when set, is called with qemu's pid each time qemu starts,
	// before the guest has booted.
	Started func(pid int)

	// BootStall: a boot whose console and qemu stay still this long has
	// hung and is started again; default 10 s. BootTimeout caps the whole
	// boot, every attempt, until the guest's hello; default 5 min.
	// Zero values come from SKIFF_KVM_BOOT_STALL and SKIFF_KVM_BOOT_TIMEOUT
	// when set.
	BootStall    time.Duration
	BootTimeout  time.Duration
	BootAttempts int // qemu runs before giving up on stalls; default 3
}

func (c Config) withDefaults() Config {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.ShareTag == "" {
		c.ShareTag = "skiffroot"
	}
	if c.MemoryMiB == 0 {
		c.MemoryMiB = 256
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Machine == "" {
		c.Machine = "microvm"
	}
	if c.BootStall == 0 {
		c.BootStall = 10 * time.Second
	}
	if c.BootTimeout == 0 {
		c.BootTimeout = 5 * time.Minute
	}
	if c.BootAttempts == 0 {
		c.BootAttempts = 3
	}
	return c
}

func (c Config) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"Kernel", c.Kernel}, {"Initrd", c.Initrd}, {"Share", c.Share},
		{"ConsoleLog", c.ConsoleLog}, {"AgentSocket", c.AgentSocket},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s", ErrBadConfig, strings.Join(missing, ", "))
	}
	if c.Accel != "kvm" && c.Accel != "tcg" {
		return fmt.Errorf("%w: accel %q", ErrBadAccel, c.Accel)
	}
	if c.Machine != "microvm" && c.Machine != "q35" {
		return fmt.Errorf("%w: machine %q (want microvm or q35)", ErrBadConfig, c.Machine)
	}
	if c.Tap != nil {
		if _, err := net.ParseMAC(c.MAC); err != nil {
			return fmt.Errorf("%w: mac %q", ErrBadConfig, c.MAC)
		}
	}
	if strings.Contains(c.Share+c.ShareTag+c.AgentSocket+c.ControlSocket+c.ForwardSocket, ",") {
		// qemu option values would need ",," escaping; refuse instead.
		return fmt.Errorf("%w: paths and tag must not contain ','", ErrBadConfig)
	}
	return nil
}

// Args returns qemu's arguments for c (after defaults, with Accel set).
func (c Config) Args() ([]string, error) {
	c = c.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	// microvm has only virtio-mmio; q35 has PCI.
	bus, machine, cmdline := "pci", "q35", "console=ttyS0 panic=-1 quiet"
	if c.Machine == "microvm" {
		bus, machine = "device", "microvm"
	}
	if c.Accel == "tcg" && c.TSCkHz > 0 {
		cmdline += " tsc_early_khz=" + strconv.Itoa(c.TSCkHz)
	}
	cmdline += " skiff.share=" + c.ShareTag
	if c.Cmdline != "" {
		cmdline += " " + c.Cmdline
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic",
		"-no-reboot", // the guest's reboot or panic ends qemu
		"-M", machine, "-accel", c.Accel,
		"-m", strconv.Itoa(c.MemoryMiB), "-smp", strconv.Itoa(c.CPUs),
	}
	if c.Accel == "kvm" {
		args = append(args, "-cpu", "host")
	}
	if c.Machine == "microvm" {
		args = append(args, "-global", "virtio-mmio.force-legacy=false")
	}
	args = append(args,
		"-kernel", c.Kernel, "-initrd", c.Initrd, "-append", cmdline,
		// Start copies qemu's stdout to ConsoleLog and Console.
		"-serial", "file:/dev/stdout",
		// The share may hold mounts (the apps' rootfs overlays, volumes):
		// remap inode numbers so that files on different host filesystems
		// never look identical in the guest.
		"-fsdev", "local,id=share,security_model=passthrough,multidevs=remap,path="+c.Share,
		"-device", "virtio-9p-"+bus+",fsdev=share,mount_tag="+c.ShareTag,
		"-device", "virtio-serial-"+bus,
		// A second console, hvc0, much faster than the emulated UART (one
		// exit per byte): console=hvc0 in Cmdline makes it /dev/console
		// once the guest init has loaded virtio_console.
		"-chardev", "file,id=hvc,path=/dev/stdout",
		"-device", "virtconsole,chardev=hvc",
		// qemu connects to the host's listener, so the host is attached
		// before the guest can write its hello.
		"-chardev", "socket,id=agent,path="+c.AgentSocket,
		"-device", "virtserialport,chardev=agent,name="+agent.PortName,
	)
	if c.Tap != nil {
		args = append(args, "-netdev", "tap,id=net0,fd=3", "-device", "virtio-net-"+bus+",netdev=net0,mac="+c.MAC)
	} else {
		args = append(args, "-nic", "none")
	}
	if c.ControlSocket != "" {
		args = append(args,
			"-chardev", "socket,id=control,path="+c.ControlSocket+",server=on,wait=off",
			"-device", "virtserialport,chardev=control,name="+agent.ControlPortName)
	}
	if c.ForwardSocket != "" {
		args = append(args,
			"-chardev", "socket,id=forward,path="+c.ForwardSocket,
			"-device", "virtserialport,chardev=forward,name="+agent.ForwardPortName)
	}
	return args, nil
}
