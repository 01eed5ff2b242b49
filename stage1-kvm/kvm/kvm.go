// Package kvm is the KVM stage1 (stage1-kvm): it runs a pod as a qemu VM
// with its own kernel, booting systemd from the pod's stage1 rootfs shared
// over virtio-9p, with the same units, hooks and stage2 as stage1-ns
// (package podunit). Its Isolator is the host side of the run, enter, stop
// and gc entrypoints of docs/stage1-abi.md, which package stage1kit
// dispatches and drives; what runs in the guest besides
// systemd is package guest (stage1-kvm/guest).
//
// Files of the pod directory (every entrypoint's working directory):
//
//	pid            qemu's pid (qemu's working directory is the pod directory)
//	console.log    the guest's serial console
//	agent.sock     run listens, qemu connects: the guest init's hello
//	control.sock   qemu listens: enter and stop talk to the guest's agent
//	forward.sock   run listens, qemu connects: connections to passed sockets (forward.go)
//	dial.sock      run listens: enter --port-forward's connections into the guest (forward.go)
//
// In the stage1 image, beside the entrypoints: /skiff/kvm/vmlinux and
// /skiff/kvm/initramfs.cpio (stage1-kvm/guest), /skiff/agent (the guest's
// control agent, package guest, in the same multi-call binary) and /usr/bin/nsenter.
package kvm

import (
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/pod"
)

// Files of the pod directory, relative so that socket paths stay short.
const (
	consoleLog    = "console.log"
	agentSocket   = "agent.sock"
	controlSocket = "control.sock"
	forwardSocket = "forward.sock"
	dialSocket    = "dial.sock"
)

// guestInit is the guest's init, in the shared stage1 rootfs.
const guestInit = "/usr/lib/systemd/systemd"

// The stage1 ABI's errors (pkg/pod), under this package's name.
var (
	ErrUsage      = pod.ErrUsage
	ErrNotRunning = pod.ErrNotRunning // the pod has no live VM
)

// guestDir is where the running binary's image keeps the guest kernel and
// initramfs: kvm/ beside the entrypoints, in the store's read-only tree.
func guestDir() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(exe), "kvm"), nil
}
