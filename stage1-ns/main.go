// Command stage1-ns is the namespace stage1's one program: installed in
// the stage1 image as /skiff/run with enter, stop, gc and hook linked to
// it, it acts as the entrypoint it is called by (see docs/stage1-abi.md).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/nspawn"
	"github.com/skiffpod/skiff/pkg/pod"
)

func main() { os.Exit(dispatch()) }

var entrypoints = map[string]func(args []string) int{
	"run": runMain, "enter": enterMain, "stop": stopMain, "gc": gcMain, "hook": hookMain,
}

func dispatch() int {
	name := filepath.Base(os.Args[0])
	ep, ok := entrypoints[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "stage1-ns: called as %q, want one of run, enter, stop, gc, hook\n", name)
		return pod.ExitStage1Failure
	}
	return ep(os.Args[1:])
}

// parse parses an entrypoint's flags and returns the pod UUID (the last
// argument) and, when withCmd, the command that follows it after "--".
func parse(fs *flag.FlagSet, args []string, withCmd bool) (uuid string, cmd []string, err error) {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		return "", nil, fmt.Errorf("%s: %w: %w", fs.Name(), nspawn.ErrUsage, err)
	}
	a := fs.Args()
	if len(a) == 0 {
		return "", nil, fmt.Errorf("%s: %w: no pod uuid", fs.Name(), nspawn.ErrUsage)
	}
	if withCmd && len(a) > 1 && a[1] == "--" {
		return a[0], a[2:], nil
	}
	if len(a) > 1 {
		return "", nil, fmt.Errorf("%s: %w: unexpected %q", fs.Name(), nspawn.ErrUsage, a[1:])
	}
	return a[0], nil, nil
}

func logger(debug bool, uuid, ep string) *slog.Logger {
	level := slog.LevelInfo
	if debug || os.Getenv(pod.EnvDebug) == "1" {
		level = slog.LevelDebug
	}
	h := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	return slog.New(h).With("stage", "stage1-ns", "entrypoint", ep, "pod", uuid)
}

// fail logs err and returns the stage1 failure status.
func fail(log *slog.Logger, err error) int {
	if errors.Is(err, nspawn.ErrUsage) || log == nil {
		fmt.Fprintln(os.Stderr, "stage1-ns:", err)
	} else {
		log.Error(err.Error())
	}
	return pod.ExitStage1Failure
}
