package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
)

// cmdExec: stage2 exec --bundle=DIR [--filters=FILE] -- CMD [ARGS...]. The
// caller has already joined the app's namespaces and root, where the bundle
// is not visible: it passes the bundle as an inherited directory fd, e.g.
// --bundle=/proc/self/fd/3, opened before it entered. FILE (likewise an
// inherited fd) holds the seccomp filters the app inherited from the pod's
// init, as launch.WriteFilters encodes them; they are loaded before the
// app's own. The command gets the caller's TERM (see withTerm).
func cmdExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory holding spec.json")
	filters := fs.String("filters", "", "seccomp filters the app inherited")
	debug := fs.Bool("debug", false, "log what is done")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" || fs.NArg() == 0 {
		return errors.New("usage: stage2 exec --bundle=DIR [--filters=FILE] -- CMD [ARGS...]")
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	logger(*debug).Debug("exec", "bundle", *bundle, "app", s.Annotations[appspec.AnnotationApp], "args", fs.Args())
	var inherited []launch.Filter
	if *filters != "" {
		f, err := os.Open(*filters)
		if err != nil {
			return err
		}
		inherited, err = launch.ReadFilters(f)
		f.Close()
		if err != nil {
			return err
		}
	}
	if s.Process != nil {
		s.Process.Env = withTerm(s.Process.Env, os.Getenv("TERM"))
	}
	return launch.Exec(s, fs.Args(), inherited)
}

// withTerm returns env with TERM set to the caller's term, or vt100 when
// the caller has none, over the app's own: an entered command mostly runs
// on the caller's terminal (rkt's enter did the same).
func withTerm(env []string, term string) []string {
	if term == "" {
		term = "vt100"
	}
	out := slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, "TERM=") })
	return append(out, "TERM="+term)
}
