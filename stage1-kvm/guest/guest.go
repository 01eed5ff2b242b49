// Package guest is what stage1-kvm runs inside the guest besides its init
// (stage1-kvm/guest/init): the control agent that serves enter and stop
// from the host (package kvm's side), and the shutdown hook's console
// quieting. The agent's wire protocol is pkg/vm/agent.
package guest

import (
	"os"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// In-guest paths, also where the stage1-kvm image puts them.
const (
	AgentPath   = podunit.SkiffDir + "/agent"
	AgentUnit   = "skiff-agent.service"
	NsenterPath = "/usr/bin/nsenter"
	// SystemctlPath is the guest's systemctl, which the app entrypoints
	// run through the agent.
	SystemctlPath = "/usr/bin/systemctl"
	// LibDir holds the guest's shared libraries (the sysroot's, in
	// memory). systemd and journald get it as LD_LIBRARY_PATH: the dynamic
	// loader's default search starts in /lib, a symlink in the 9p share,
	// so each library it opened cost two round trips to the host (a
	// lookup and a readlink; ~95 of each per pod under TCG).
	LibDir = "/usr/lib/x86_64-linux-gnu"
)

// Codes are the errors the control agent reports by code (agent.Codes):
// the stage1 ABI's, which enter and stop pass on to stage0.
var Codes = agent.Codes{
	"usage":       pod.ErrUsage,
	"not-running": pod.ErrNotRunning,
	"no-app":      pod.ErrNoApp,
}

// QuietConsole hides the kernel's last words ("reboot: Power down") from
// the console, which is run's stdout: systemd-shutdown raises the console
// log level to 5, and then runs the executables in
// /usr/lib/systemd/system-shutdown/, such as the hook, just before the
// guest powers off.
func QuietConsole() error {
	return os.WriteFile("/proc/sys/kernel/printk", []byte("0"), 0)
}
