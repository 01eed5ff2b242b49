// Command stage1-kvm is the KVM stage1's one program: installed in the
// stage1 image as /skiff/run with enter, stop, gc, hook and agent linked
// to it, it acts as the entrypoint it is called by (see
// docs/stage1-abi.md and docs/stage1-kvm.md). hook and agent run inside
// the guest.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

const stage = "stage1-kvm"

func main() { os.Exit(dispatch()) }

var entrypoints = map[string]func(args []string) int{
	"run": runMain, "enter": enterMain, "stop": stopMain, "gc": gcMain, "hook": hookMain, "agent": agentMain,
	"leader": kvm.Leader, // run's machined leader, in the stage1 rootfs (kvm/machine.go)
}

func dispatch() int {
	name := filepath.Base(os.Args[0])
	ep, ok := entrypoints[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: called as %q, want one of run, enter, stop, gc, hook, agent\n", stage, name)
		return pod.ExitFailure
	}
	return ep(os.Args[1:])
}

// fail logs err and returns the stage1 failure status.
func fail(log *slog.Logger, err error) int {
	if errors.Is(err, pod.ErrUsage) || log == nil {
		fmt.Fprintln(os.Stderr, stage+":", err)
	} else {
		log.Error(err.Error())
	}
	return pod.ExitFailure
}
