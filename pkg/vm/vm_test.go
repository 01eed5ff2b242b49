package vm

import (
	"errors"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestChooseAccel(t *testing.T) {
	tests := []struct {
		mode      string
		host      Host
		want      string
		wantWarn  bool
		wantError error
	}{
		{"", Host{KVM: true}, "kvm", false, nil},
		{"auto", Host{KVM: true}, "kvm", false, nil},
		{"auto", Host{KVM: true, PVM: true}, "tcg", true, nil},
		{"auto", Host{}, "tcg", true, nil},
		{"kvm", Host{KVM: true}, "kvm", false, nil},
		{"kvm", Host{KVM: true, PVM: true}, "kvm", true, nil},
		{"kvm", Host{}, "", false, ErrKVMUnusable},
		{"tcg", Host{KVM: true}, "tcg", false, nil},
		{"tcg", Host{}, "tcg", false, nil},
		{"xen", Host{KVM: true}, "", false, ErrBadAccel},
	}
	for _, tt := range tests {
		t.Run(tt.mode+"/"+hostName(tt.host), func(t *testing.T) {
			got, warn, err := ChooseAccel(tt.mode, tt.host)
			if !errors.Is(err, tt.wantError) {
				t.Fatalf("err = %v, want %v", err, tt.wantError)
			}
			if got != tt.want {
				t.Errorf("accel = %q, want %q", got, tt.want)
			}
			if (warn != "") != tt.wantWarn {
				t.Errorf("warning = %q, want one: %v", warn, tt.wantWarn)
			}
		})
	}
}

func hostName(h Host) string {
	switch {
	case h.KVM && h.PVM:
		return "pvm"
	case h.KVM:
		return "kvm"
	}
	return "nokvm"
}

func baseConfig() Config {
	return Config{
		Kernel: "/k/vmlinux", Initrd: "/k/initramfs.cpio", Share: "/pod/root",
		ConsoleLog: "/pod/console.log", AgentSocket: "/pod/agent.sock", Accel: "tcg",
	}
}

func TestArgs(t *testing.T) {
	tests := []struct {
		name    string
		mod     func(*Config)
		want    [][]string // runs of consecutive arguments
		notWant []string   // substrings of the joined line
	}{
		{
			name: "tcg on q35 with PCI devices and the TSC rate",
			mod:  func(c *Config) { c.Machine, c.TSCkHz = "q35", 2600000 },
			want: [][]string{
				{"-nodefaults", "-no-user-config", "-nographic", "-no-reboot"},
				{"-M", "q35", "-accel", "tcg", "-m", "256", "-smp", "1"},
				{"-kernel", "/k/vmlinux", "-initrd", "/k/initramfs.cpio", "-append", "console=ttyS0 panic=-1 quiet tsc_early_khz=2600000 skiff.share=skiffroot"},
				{"-serial", "file:/dev/stdout"},
				{"-nic", "none"},
				{"-fsdev", "local,id=share,security_model=passthrough,multidevs=remap,path=/pod/root"},
				{"-device", "virtio-9p-pci,fsdev=share,mount_tag=skiffroot"},
				{"-device", "virtio-serial-pci"},
				{"-chardev", "file,id=hvc,path=/dev/stdout", "-device", "virtconsole,chardev=hvc"},
				{"-chardev", "socket,id=agent,path=/pod/agent.sock"},
				{"-device", "virtserialport,chardev=agent,name=skiff.agent"},
			},
			notWant: []string{"-cpu", "virtio-mmio.force-legacy=false", "skiff.ctl"},
		},
		{
			name: "kvm defaults to microvm with mmio devices, no TSC rate",
			mod:  func(c *Config) { c.Accel, c.TSCkHz = "kvm", 2600000 },
			want: [][]string{
				{"-M", "microvm", "-accel", "kvm"},
				{"-cpu", "host"},
				{"-global", "virtio-mmio.force-legacy=false"},
				{"-append", "console=ttyS0 panic=-1 quiet skiff.share=skiffroot"},
				{"-device", "virtio-9p-device,fsdev=share,mount_tag=skiffroot"},
				{"-device", "virtio-serial-device"},
			},
			notWant: []string{"virtio-9p-pci"},
		},
		{
			name: "a tap behind a virtio-net device",
			mod:  func(c *Config) { c.Machine, c.Tap, c.MAC = "microvm", os.Stdin, "12:34:56:78:9a:bc" },
			want: [][]string{
				{"-netdev", "tap,id=net0,fd=3", "-device", "virtio-net-device,netdev=net0,mac=12:34:56:78:9a:bc"},
			},
			notWant: []string{"-nic"},
		},
		{
			name: "control socket",
			mod:  func(c *Config) { c.ControlSocket = "ctl.sock" },
			want: [][]string{
				{"-chardev", "socket,id=control,path=ctl.sock,server=on,wait=off"},
				{"-device", "virtserialport,chardev=control,name=skiff.ctl"},
			},
		},
		{
			name: "forward socket",
			mod:  func(c *Config) { c.ForwardSocket = "fwd.sock" },
			want: [][]string{
				{"-chardev", "socket,id=forward,path=fwd.sock"},
				{"-device", "virtserialport,chardev=forward,name=skiff.fwd"},
			},
		},
		{
			name: "explicit machine, sizes, tag and cmdline",
			mod: func(c *Config) {
				c.Machine, c.MemoryMiB, c.CPUs, c.ShareTag, c.Cmdline = "microvm", 512, 2, "pod", "skiff.init=/sbin/init"
			},
			want: [][]string{
				{"-M", "microvm", "-accel", "tcg", "-m", "512", "-smp", "2"},
				{"-append", "console=ttyS0 panic=-1 quiet skiff.share=pod skiff.init=/sbin/init"},
				{"-device", "virtio-9p-device,fsdev=share,mount_tag=pod"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.mod(&c)
			args, err := c.Args()
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Join(args, " ")
			for _, w := range tt.want {
				if !containsRun(args, w) {
					t.Errorf("args lack %q:\n%s", w, line)
				}
			}
			for _, nw := range tt.notWant {
				if strings.Contains(line, nw) {
					t.Errorf("args contain %q:\n%s", nw, line)
				}
			}
		})
	}
}

func TestArgsBadMAC(t *testing.T) {
	c := baseConfig()
	c.Tap, c.MAC = os.Stdin, "12:34,x"
	if _, err := c.Args(); !errors.Is(err, ErrBadConfig) {
		t.Errorf("mac %q: err = %v, want %v", c.MAC, err, ErrBadConfig)
	}
}

func containsRun(args, run []string) bool {
	for i := 0; i+len(run) <= len(args); i++ {
		if slices.Equal(args[i:i+len(run)], run) {
			return true
		}
	}
	return false
}

func TestArgsInvalid(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		want error
	}{
		{"no kernel", func(c *Config) { c.Kernel = "" }, ErrBadConfig},
		{"no share", func(c *Config) { c.Share = "" }, ErrBadConfig},
		{"no agent socket", func(c *Config) { c.AgentSocket = "" }, ErrBadConfig},
		{"accel unresolved", func(c *Config) { c.Accel = "" }, ErrBadAccel},
		{"accel auto", func(c *Config) { c.Accel = "auto" }, ErrBadAccel},
		{"bad machine", func(c *Config) { c.Machine = "pc" }, ErrBadConfig},
		{"comma in path", func(c *Config) { c.Share = "/a,b" }, ErrBadConfig},
		{"comma in control socket", func(c *Config) { c.ControlSocket = "a,b" }, ErrBadConfig},
		{"comma in forward socket", func(c *Config) { c.ForwardSocket = "a,b" }, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := baseConfig()
			tt.mod(&c)
			args, err := c.Args()
			if !errors.Is(err, tt.want) {
				t.Errorf("Args() = %v, %v; want error %v", args, err, tt.want)
			}
		})
	}
}

func TestHostTSCkHz(t *testing.T) {
	// Any x86-64 made this century runs its TSC between 0.5 and 10 GHz.
	if got := HostTSCkHz(); runtime.GOARCH == "amd64" && (got < 500_000 || got > 10_000_000) {
		t.Errorf("HostTSCkHz() = %d", got)
	}
}

func TestDefaults(t *testing.T) {
	c := baseConfig().withDefaults()
	if c.BootAttempts != 3 || c.BootStall != 10*time.Second || c.BootTimeout != 5*time.Minute || c.Machine != "microvm" {
		t.Errorf("defaults = attempts %d, stall %s, timeout %s, machine %q", c.BootAttempts, c.BootStall, c.BootTimeout, c.Machine)
	}
}

func TestLimitsFromEnv(t *testing.T) {
	for _, tt := range []struct {
		name           string
		timeout, stall string // environment
		set            time.Duration
		wantTimeout    time.Duration
		wantStall      time.Duration
		wantErr        bool
	}{
		{name: "unset"},
		{name: "both", timeout: "10m", stall: "30s", wantTimeout: 10 * time.Minute, wantStall: 30 * time.Second},
		{name: "config wins", timeout: "10m", set: time.Minute, wantTimeout: time.Minute},
		{name: "not a duration", timeout: "ten", wantErr: true},
		{name: "zero", stall: "0s", wantErr: true},
		{name: "negative", stall: "-1s", wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvBootTimeout, tt.timeout)
			t.Setenv(EnvBootStall, tt.stall)
			c := Config{BootTimeout: tt.set}
			err := c.limitsFromEnv()
			if (err != nil) != tt.wantErr || (err != nil && !errors.Is(err, ErrBadConfig)) {
				t.Fatalf("limitsFromEnv() = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (c.BootTimeout != tt.wantTimeout || c.BootStall != tt.wantStall) {
				t.Errorf("timeout %s stall %s, want %s %s", c.BootTimeout, c.BootStall, tt.wantTimeout, tt.wantStall)
			}
		})
	}
}

func TestProgressMoved(t *testing.T) {
	const iv = time.Second
	base := progress{console: 100, busy: 5 * time.Second, known: true}
	for _, tt := range []struct {
		name string
		cur  progress
		want bool
	}{
		{"still", base, false},
		{"idle qemu", progress{console: 100, busy: base.busy + 20*time.Millisecond, known: true}, false},
		{"console output", progress{console: 101, busy: base.busy, known: true}, true},
		{"qemu running or runnable", progress{console: 100, busy: base.busy + 300*time.Millisecond, known: true}, true},
		{"unknown activity", progress{console: 100}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cur.movedSince(base, iv); got != tt.want {
				t.Errorf("movedSince = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSampleProgressSelf(t *testing.T) {
	before := sampleProgress(os.Getpid(), "/nonexistent")
	if !before.known {
		t.Skip("no /proc/PID/task/*/schedstat on this kernel (CONFIG_SCHED_INFO)")
	}
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	if after := sampleProgress(os.Getpid(), "/nonexistent"); after.busy-before.busy < 40*time.Millisecond {
		t.Errorf("50 ms of spinning counted as %s", after.busy-before.busy)
	}
}

func TestStartWithoutQEMU(t *testing.T) {
	dir := t.TempDir()
	c := baseConfig()
	c.QEMU, c.ConsoleLog, c.AgentSocket = "skiff-test-no-such-qemu", dir+"/console.log", dir+"/agent.sock"
	_, err := Start(t.Context(), c, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "apt-get install qemu-system-x86") {
		t.Errorf("Start without qemu: %v, want an error saying what to install", err)
	}
}
