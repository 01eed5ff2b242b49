package main

import (
	"flag"

	"github.com/skiffpod/skiff/pkg/nspawn"
)

func gcMain(args []string) int {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "")
	uuid, _, err := parse(fs, args, false)
	if err != nil {
		return fail(nil, err)
	}
	if err := nspawn.GC(uuid); err != nil {
		return fail(logger(*debug, uuid, "gc"), err)
	}
	return 0
}
