package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

// hookMain runs inside the guest, called by the pod's systemd units, and
// by systemd-shutdown with the action as argument.
func hookMain(args []string) int {
	var err error
	if len(args) == 1 && slices.Contains([]string{"poweroff", "halt", "reboot", "kexec"}, args[0]) {
		err = guest.QuietConsole()
	} else {
		err = podunit.Hook("/", args)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, stage+" hook:", err)
		return 1
	}
	return 0
}
