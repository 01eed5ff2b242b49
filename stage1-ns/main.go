// Command stage1-ns is the namespace stage1's one program: installed in
// the stage1 image as /skiff/run with enter, stop, gc and hook linked to
// it, it acts as the entrypoint it is called by (see docs/stage1-abi.md).
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/stage1kit"
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
		return pod.ExitFailure
	}
	return ep(os.Args[1:])
}

func logger(debug bool, uuid, ep string) *slog.Logger {
	return stage1kit.Logger("stage1-ns", ep, uuid, debug)
}

// fail logs err and returns the stage1 failure status.
func fail(log *slog.Logger, err error) int {
	if errors.Is(err, pod.ErrUsage) || log == nil {
		fmt.Fprintln(os.Stderr, "stage1-ns:", err)
	} else {
		log.Error(err.Error())
	}
	return pod.ExitFailure
}
