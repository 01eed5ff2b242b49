package main

import (
	"flag"
	"os"

	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/stage1-kvm/kvm"
)

// enterMain returns the entered command's status.
func enterMain(args []string) int {
	fs := flag.NewFlagSet("enter", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	app := fs.String("app", "", "")
	uuid, cmd, err := podunit.ParseArgs(fs, args, true)
	if err != nil {
		return fail(nil, err)
	}
	code, err := kvm.Enter(*app, cmd, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		return fail(podunit.Logger(stage, "enter", uuid, *debug), err)
	}
	return code
}
