package guest

import (
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
)

// stage names stage1-kvm in log lines.
const stage = "stage1-kvm"

// AgentMain is the "agent" entrypoint: the control agent, run by systemd
// in the guest; its log goes to the pod's journal.
func AgentMain(args []string) int {
	log := stage1kit.Logger(stage, "agent", "", len(args) > 0 && args[0] == "--debug")
	if err := Agent(log); err != nil {
		log.Error(err.Error())
		return pod.ExitFailure
	}
	return 0
}

// HookMain is the "hook" entrypoint, run in the guest by the pod's systemd
// units (podunit.Hook), and by systemd-shutdown with the action as its
// argument.
func HookMain(args []string) int {
	var err error
	if len(args) == 1 && slices.Contains([]string{"poweroff", "halt", "reboot", "kexec"}, args[0]) {
		err = QuietConsole()
	} else {
		err = podunit.Hook("/", args, End)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, stage+" hook:", err)
		return 1
	}
	return 0
}

// End ends the pod once every app has ended and its status is written, as
// systemd-poweroff.service with its poweroff-immediate drop-in did after
// the poweroff's unit stops: it waits until journald has written
// everything logged so far, quiets the console, syncs (the journal is
// mmap'd over 9p: its pages reach the host only when written back) and
// powers the guest off. That skips the poweroff's transaction, its units'
// stops and a process, all slow under TCG (docs/benchmarks.md).
// When journald has not drained within podunit.QuickDrain (a loud app
// under emulation) or the power-off is refused, the hook asks systemd for
// the poweroff, which waits longer for journald.
func End() error {
	if err := podunit.SyncJournal("/", podunit.QuickDrain); err != nil {
		// Not an error: the poweroff syncs again. (The hook's output
		// would land among the app's lines, in its journal.)
		return podunit.Poweroff()
	}
	QuietConsole()
	unix.Sync()
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintln(os.Stderr, stage+" hook: power off:", err)
		return podunit.Poweroff()
	}
	return nil // not reached
}
