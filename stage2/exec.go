package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pod"
)

// cmdExec: stage2 exec --bundle=DIR [--filters=FILE] -- CMD [ARGS...]. The
// caller has already joined the app's namespaces and root, where the bundle
// is not visible: it passes the bundle as an inherited directory fd, e.g.
// --bundle=/proc/self/fd/3, opened before it entered. FILE (likewise an
// inherited fd) holds the seccomp filters the app inherited from the pod's
// init, as launch.WriteFilters encodes them; they are loaded before the
// app's own. For skiff debug, --mount-tree=N (an inherited detached mount
// of a tools image) and --mount-point=N (an O_PATH fd on the directory the
// stage1 made at pod.DebugMountPoint) mount the tools there in a mount
// namespace of the command's own, with PATH set to the tools' directories;
// --cap-add=CAP_X,... gives the command capabilities beyond the app's.
// The command gets the caller's TERM (see withTerm).
func cmdExec(args []string) error {
	fs := flag.NewFlagSet("exec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory holding spec.json")
	filters := fs.String("filters", "", "seccomp filters the app inherited")
	debug := fs.Bool("debug", false, "log what is done")
	tree := fs.Int("mount-tree", -1, "inherited detached mount of a tools image")
	point := fs.Int("mount-point", -1, "inherited O_PATH fd on the directory to mount it at")
	capAdd := fs.String("cap-add", "", "capabilities to add, comma-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" || fs.NArg() == 0 || (*tree < 0) != (*point < 0) {
		return errors.New("usage: stage2 exec --bundle=DIR [--filters=FILE] [--mount-tree=FD --mount-point=FD] [--cap-add=CAPS] -- CMD [ARGS...]")
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	if *capAdd != "" {
		if err := launch.AddCaps(s, strings.Split(*capAdd, ",")); err != nil {
			return err
		}
	}
	if *tree >= 0 {
		if err := launch.MountTools(*tree, *point, pod.DebugMountPoint); err != nil {
			return err
		}
		unix.Close(*tree)
		unix.Close(*point)
		s.Process.Env = launch.SetEnv(s.Process.Env, "PATH", launch.ToolsPath(pod.DebugMountPoint))
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
