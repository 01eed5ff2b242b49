package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func gcMain(args []string) int {
	var a pod.GCArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	if err := kvm.GC(); err != nil {
		return fail(stage1kit.Logger(stage, "gc", a.UUID, a.Debug), err)
	}
	return 0
}
