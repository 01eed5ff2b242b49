package main

import (
	"flag"

	"github.com/skiffpod/skiff/pkg/nspawn"
)

// enterMain becomes the command; it returns only when entering failed.
func enterMain(args []string) int {
	fs := flag.NewFlagSet("enter", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	app := fs.String("app", "", "")
	uuid, cmd, err := parse(fs, args, true)
	if err != nil {
		return fail(nil, err)
	}
	return fail(logger(*debug, uuid, "enter"), nspawn.Enter(*app, cmd))
}
