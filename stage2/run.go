package main

import (
	"errors"
	"flag"
	"io"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
)

// cmdRun: stage2 run --bundle=DIR [-- CMD [ARGS...]]. DIR holds spec.json,
// the app's rootfs and the files the spec's bind mounts name relatively.
// With CMD, CMD runs in the app's place, in its root and with its
// restrictions: the pod's units run the app's event handlers (appc's
// pre-start and post-stop) so, each in a mount namespace of its own.
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory (spec.json, rootfs)")
	debug := fs.Bool("debug", false, "log what is done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" {
		return errors.New("usage: stage2 run --bundle=DIR [-- CMD [ARGS...]]")
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	logger(*debug).Debug("run", "bundle", *bundle, "app", s.Annotations[appspec.AnnotationApp], "args", s.Process.Args, "handler", fs.Args())
	return launch.Run(*bundle, s, fs.Args())
}
