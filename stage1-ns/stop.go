package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

func stopMain(args []string) int {
	var a pod.StopArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	if err := nspawn.Stop(a.Force); err != nil {
		return fail(logger(a.Debug, a.UUID, "stop"), err)
	}
	return 0
}
