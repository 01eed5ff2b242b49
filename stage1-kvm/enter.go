package main

import (
	"os"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

// enterMain returns the entered command's status.
func enterMain(args []string) int {
	var a pod.EnterArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	code, err := kvm.Enter(a.App, a.Cmd, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		return fail(stage1kit.Logger(stage, "enter", a.UUID, a.Debug), err)
	}
	return code
}
