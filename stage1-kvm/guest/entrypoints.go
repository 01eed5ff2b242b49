package guest

import (
	"fmt"
	"os"
	"slices"

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
		err = podunit.Hook("/", args, nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, stage+" hook:", err)
		return 1
	}
	return 0
}
