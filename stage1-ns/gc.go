package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

func gcMain(args []string) int {
	var a pod.GCArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	if err := nspawn.GC(a.UUID); err != nil {
		return fail(logger(a.Debug, a.UUID, "gc"), err)
	}
	return 0
}
