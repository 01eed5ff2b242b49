package main

import (
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/stage1-ns/nspawn"
)

// enterMain becomes the command; it returns only when entering failed.
func enterMain(args []string) int {
	var a pod.EnterArgs
	if err := a.Parse(args); err != nil {
		return fail(nil, err)
	}
	return fail(logger(a.Debug, a.UUID, "enter"), nspawn.Enter(a.App, a.Cmd))
}
