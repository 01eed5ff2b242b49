// Command stage1-kvm is the KVM stage1's one program: installed in the
// stage1 image as /skiff/run with enter, stop, gc, hook, agent and the app
// entrypoints linked to it, it acts as the entrypoint it is called by
// (see docs/stage1-abi.md and docs/stage1-kvm.md). The ABI's entrypoints are
// pkg/stage1kit's around the isolator in stage1-kvm/kvm; hook and agent
// run inside the guest (stage1-kvm/guest).
package main

import (
	"os"

	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func main() {
	os.Exit(stage1kit.Main(stage1kit.Stage1{Name: "stage1-kvm", Isolator: kvm.Isolator{}, Entrypoints: map[string]func([]string) int{
		"hook": guest.HookMain, "agent": guest.AgentMain,
		"leader": kvm.Leader, // run's machined leader, in the stage1 rootfs (kvm/machine.go)
	}}, os.Args))
}
