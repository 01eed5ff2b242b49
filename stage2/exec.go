package main

import (
	"errors"
	"flag"
	"io"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
)

// cmdExec: stage2 exec --bundle=DIR -- CMD [ARGS...]. The caller has
// already joined the app's namespaces and root, where the bundle is not
// visible: it passes the bundle as an inherited directory fd, e.g.
// --bundle=/proc/self/fd/3, opened before it entered.
func cmdExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory holding spec.json")
	debug := fs.Bool("debug", false, "log what is done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" || fs.NArg() == 0 {
		return errors.New("usage: stage2 exec --bundle=DIR -- CMD [ARGS...]")
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	logger(*debug).Debug("exec", "bundle", *bundle, "app", s.Annotations[appspec.AnnotationApp], "args", fs.Args())
	return launch.Exec(s, fs.Args())
}
