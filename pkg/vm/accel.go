package vm

import (
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"
)

// Host is what accelerator selection needs to know about the host.
type Host struct {
	KVM bool // /dev/kvm opens and speaks KVM API 12
	PVM bool // the host is itself a PVM guest (/sys/module/kvm_pvm)
}

// ProbeHost inspects this machine.
func ProbeHost() Host {
	var h Host
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR|unix.O_CLOEXEC, 0); err == nil {
		const kvmGetAPIVersion = 0xae00
		v, err := unix.IoctlRetInt(int(f.Fd()), kvmGetAPIVersion)
		h.KVM = err == nil && v == 12
		f.Close()
	}
	_, err := os.Stat("/sys/module/kvm_pvm")
	h.PVM = err == nil
	return h
}

// ChooseAccel maps a requested mode (SKIFF_KVM_ACCEL: "auto" or "",
// "kvm", "tcg") to a qemu accelerator. warning, when set, is one line the
// caller should log.
func ChooseAccel(mode string, h Host) (accel, warning string, err error) {
	switch mode {
	case "", "auto":
		switch {
		case h.KVM && !h.PVM:
			return "kvm", "", nil
		case h.KVM:
			// Ordinary guest kernels hang under PVM's KVM.
			return "tcg", "KVM here is PVM (/sys/module/kvm_pvm), which cannot run the guest kernel: using software emulation (TCG), much slower", nil
		default:
			return "tcg", "/dev/kvm is not usable: using software emulation (TCG), much slower; set SKIFF_KVM_ACCEL=kvm to fail instead", nil
		}
	case "kvm":
		if !h.KVM {
			return "", "", fmt.Errorf("choose accelerator: %w", ErrKVMUnusable)
		}
		if h.PVM {
			return "kvm", "SKIFF_KVM_ACCEL=kvm on a PVM host: the guest kernel will probably hang", nil
		}
		return "kvm", "", nil
	case "tcg":
		return "tcg", "", nil
	}
	return "", "", fmt.Errorf("choose accelerator %q: %w", mode, ErrBadAccel)
}

// AccelFromEnv resolves SKIFF_KVM_ACCEL on this host, logging any warning.
func AccelFromEnv(log *slog.Logger) (string, error) {
	accel, warning, err := ChooseAccel(os.Getenv("SKIFF_KVM_ACCEL"), ProbeHost())
	if warning != "" {
		log.Warn(warning)
	}
	return accel, err
}
