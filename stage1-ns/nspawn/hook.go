package nspawn

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/podunit"
)

// HookMain is the "hook" entrypoint, run in the pod by its systemd units
// (podunit.Hook). Once every app has ended it ends the pod at once
// (End) instead of through systemd's poweroff.
func HookMain(args []string) int {
	if err := podunit.Hook("/", args, End); err != nil {
		fmt.Fprintln(os.Stderr, "stage1-ns hook:", err)
		return 1
	}
	return 0
}

// End ends the pod once every app has ended and its status is written:
// it waits until journald has written everything logged so far (the
// apps' last lines), then reboot(2)s the pod's PID namespace, which kills
// everything in it at once; nspawn reads its init's end as a poweroff.
// systemd's own poweroff would stop the pod's units one by one, sync the
// journal from a service, exec systemd-shutdown and signal what is left:
// more CPU work (docs/benchmarks.md). When journald has not drained
// within podunit.QuickDrain (a loud app; the hook runs under the app
// unit's stop timeout), or the reboot is refused, the hook asks systemd
// for that poweroff instead, which waits longer for journald.
func End() error {
	if err := podunit.SyncJournal("/", podunit.QuickDrain); err != nil {
		// Not an error: the poweroff syncs again. (The hook's output
		// would land among the app's lines, in its journal.)
		return podunit.Poweroff()
	}
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
		fmt.Fprintln(os.Stderr, "stage1-ns hook: end the pod:", err)
		return podunit.Poweroff()
	}
	return nil // not reached: the kernel ends the caller too
}
