package main

import (
	"flag"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

func gcMain(args []string) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	uuid, _, err := podunit.ParseArgs(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	if err := kvm.GC(); err != nil {
		return fail(podunit.Logger(stage, "gc", uuid, *debug), err)
	}
	return 0
}
