package main

import (
	"flag"

	"github.com/skiffpod/skiff/pkg/nspawn"
)

func stopMain(args []string) int {
	fs := flag.NewFlagSet("stop", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	force := fs.Bool("force", false, "")
	uuid, _, err := parse(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	if err := nspawn.Stop(*force); err != nil {
		return fail(logger(*debug, uuid, "stop"), err)
	}
	return 0
}
