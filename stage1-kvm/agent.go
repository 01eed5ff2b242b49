package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

// agentMain runs inside the guest as a systemd service; its log goes to
// the pod's journal.
func agentMain(args []string) int {
	log := stage1kit.Logger(stage, "agent", "", len(args) > 0 && args[0] == "--debug")
	if err := guest.Agent(log); err != nil {
		log.Error(err.Error())
		return pod.ExitFailure
	}
	return 0
}
