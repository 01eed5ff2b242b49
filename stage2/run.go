package main

import (
	"errors"
	"flag"
	"io"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
)

// cmdRun: stage2 run --bundle=DIR. DIR holds spec.json, the app's rootfs
// and the files the spec's bind mounts name relatively.
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory (spec.json, rootfs)")
	debug := fs.Bool("debug", false, "log what is done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" || fs.NArg() > 0 {
		return errors.New("usage: stage2 run --bundle=DIR")
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	logger(*debug).Debug("run", "bundle", *bundle, "app", s.Annotations[appspec.AnnotationApp], "args", s.Process.Args)
	return launch.Run(*bundle, s)
}
