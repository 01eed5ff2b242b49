// Stage2 is the per-app launcher inside a pod: `stage2 run` sets up one
// app's root and process from its bundle's spec.json and execs it (or, for
// the app's event handlers, a command in its place); `stage2 exec` gives a
// command the same restrictions, for `skiff enter`.
// Every failure prints one line to stderr and exits 254, the code the
// stage1 ABI reserves for the runtime's own failures; once the app is
// exec'd its status is its own.
package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"

	"github.com/skiffpod/skiff/pkg/clilog"
	"github.com/skiffpod/skiff/pkg/pod"
)

// exitFailure is stage2's own failure status, the stage1 ABI's.
const exitFailure = pod.ExitFailure

// init pins the main goroutine to the main thread before main runs: the
// mount namespace, capabilities, no_new_privs and seccomp stage2 sets up
// are per thread, and the thread that execs must be the one that has them.
func init() { runtime.LockOSThread() }

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: stage2 run --bundle=DIR [-- CMD [ARGS...]] | stage2 exec --bundle=DIR [--filters=FILE] -- CMD [ARGS...]")
		return exitFailure
	}
	var err error
	switch args[0] {
	case "run":
		err = cmdRun(args[1:])
	case "exec":
		err = cmdExec(args[1:])
	case "relay":
		err = cmdRelay(args[1:])
	default:
		err = fmt.Errorf("unknown command %q (want run or exec)", args[0])
	}
	var st exitStatus
	if errors.As(err, &st) {
		return int(st)
	}
	fmt.Fprintf(os.Stderr, "stage2 %s: %v\n", args[0], err)
	return exitFailure
}

// exitStatus is an app's exit status, which stage2 exits with when it
// waited for the app (runInPIDNamespace) rather than became it.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("app exited %d", int(e)) }

func logger(debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug || os.Getenv(pod.EnvDebug) == "1" {
		level = slog.LevelDebug
	}
	return clilog.New(os.Stderr, "skiff stage2", level)
}
