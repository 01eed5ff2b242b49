package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func stopMain(args []string) int {
	var a pod.StopArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	if err := kvm.Stop(a.Force); err != nil {
		return fail(stage1kit.Logger(stage, "stop", a.UUID, a.Debug), err)
	}
	return 0
}
