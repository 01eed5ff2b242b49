package main

import (
	"flag"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func stopMain(args []string) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	force := fs.Bool("force", false, "")
	uuid, _, err := podunit.ParseArgs(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	if err := kvm.Stop(*force); err != nil {
		return fail(podunit.Logger(stage, "stop", uuid, *debug), err)
	}
	return 0
}
