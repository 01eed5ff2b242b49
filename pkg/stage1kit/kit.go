// Package stage1kit is what every stage1 program shares around the way it
// isolates a pod: the entrypoint dispatch on the name it is called by, the
// arguments through pkg/pod's codecs, the logger, the inherited lock fd,
// the pid file, and run's loop (signals become a clean stop, the ready
// marker becomes sd_notify READY=1, the apps' statuses the exit status).
// A stage1 implements Isolator, and its main is one call to Main.
package stage1kit

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// An Isolator is one way of running a pod (a systemd-nspawn container, a
// VM): it implements the entrypoints of docs/stage1-abi.md for the pod
// whose directory is the working directory. The kit has parsed and
// checked the arguments; log is tagged with the stage, entrypoint and pod.
type Isolator interface {
	// Boot prepares the pod (podunit.Prepare and what the isolator adds)
	// and starts it; run's lock fd is already checked (KeepLock). It
	// returns the booted pod and its apps. On error it has undone what it
	// did on the host.
	Boot(log *slog.Logger, a pod.RunArgs) (Pod, []podunit.App, error)
	// Enter runs a.Cmd in app a.App and returns its exit status; it may
	// instead exec the command and return only on failure.
	Enter(log *slog.Logger, a pod.EnterArgs) (int, error)
	// Stop asks the pod for a clean poweroff, or kills it (a.Force).
	Stop(log *slog.Logger, a pod.StopArgs) error
	// GC undoes what run did on the host for an ended pod.
	GC(log *slog.Logger, a pod.GCArgs) error
}

// An AppIsolator is an Isolator that offers the app sandbox
// (docs/app-sandbox.md): App does app entrypoint ep (pod.AppEntrypoints)
// for app a.App of the running pod a.UUID, which runs with --mutable.
type AppIsolator interface {
	Isolator
	App(log *slog.Logger, ep string, a pod.AppArgs) error
}

// A Pod is a booted pod as run's loop drives it. The loop calls Wait
// once, Poweroff at most once (on the first signal, in its own
// goroutine) and Kill any time (a second signal, a failed Poweroff).
type Pod interface {
	// Wait waits until the pod has ended, undoes what booting it did on
	// the host, and says how its isolation ended (not how its apps did).
	Wait() error
	// Poweroff asks the pod for a clean poweroff; it may wait until the
	// pod can act on the request, and returns once it was delivered.
	Poweroff() error
	// Kill ends the pod now.
	Kill()
}

// Stage1 is one stage1 program.
type Stage1 struct {
	Name     string // e.g. "stage1-ns": the start of log and error lines
	Isolator Isolator
	// More entrypoints by name; "hook" replaces the kit's (podunit.Hook).
	Entrypoints map[string]func(args []string) int
}

// Main runs the entrypoint the program was called as (the base name of
// argv[0], as the stage1 image links them) with the rest of argv, and
// returns its exit status.
func Main(s Stage1, argv []string) int {
	eps := map[string]func([]string) int{
		pod.EntrypointRun:   s.run,
		pod.EntrypointEnter: s.enter,
		pod.EntrypointStop:  s.stop,
		pod.EntrypointGC:    s.gc,
		"hook":              s.hook,
	}
	if _, ok := s.Isolator.(AppIsolator); ok {
		for _, ep := range pod.AppEntrypoints {
			eps[ep] = func(argv []string) int { return s.app(ep, argv) }
		}
	}
	for name, ep := range s.Entrypoints {
		eps[name] = ep
	}
	name := ""
	if len(argv) > 0 {
		name = filepath.Base(argv[0])
	}
	ep, ok := eps[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: called as %q, want one of %s\n", s.Name, name, strings.Join(slices.Sorted(maps.Keys(eps)), ", "))
		return pod.ExitFailure
	}
	return ep(argv[1:])
}

// args is what the kit needs of every entrypoint's parsed arguments.
type args interface {
	Parse(argv []string) error
}

// parse parses argv into a; a usage error is one line on stderr.
func (s Stage1) parse(a args, argv []string) bool {
	if err := a.Parse(argv); err != nil {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
		return false
	}
	return true
}

// fail reports err, which ended entrypoint ep, and returns the stage1
// failure status. A usage error is one plain line, as the ABI asks.
func (s Stage1) fail(log *slog.Logger, err error) int {
	if errors.Is(err, pod.ErrUsage) {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
	} else {
		log.Error(err.Error())
	}
	return pod.ExitFailure
}

func (s Stage1) enter(argv []string) int {
	var a pod.EnterArgs
	if !s.parse(&a, argv) {
		return pod.ExitFailure
	}
	log := Logger(s.Name, pod.EntrypointEnter, a.UUID, a.Debug)
	code, err := s.Isolator.Enter(log, a)
	if err != nil {
		return s.fail(log, err)
	}
	return code
}

func (s Stage1) stop(argv []string) int {
	var a pod.StopArgs
	if !s.parse(&a, argv) {
		return pod.ExitFailure
	}
	log := Logger(s.Name, pod.EntrypointStop, a.UUID, a.Debug)
	if err := s.Isolator.Stop(log, a); err != nil {
		return s.fail(log, err)
	}
	return 0
}

func (s Stage1) gc(argv []string) int {
	var a pod.GCArgs
	if !s.parse(&a, argv) {
		return pod.ExitFailure
	}
	log := Logger(s.Name, pod.EntrypointGC, a.UUID, a.Debug)
	if err := s.Isolator.GC(log, a); err != nil {
		return s.fail(log, err)
	}
	return 0
}

func (s Stage1) app(ep string, argv []string) int {
	var a pod.AppArgs
	if err := a.Parse(ep, argv); err != nil {
		fmt.Fprintln(os.Stderr, s.Name+":", err)
		return pod.ExitFailure
	}
	log := Logger(s.Name, ep, a.UUID, a.Debug)
	if err := s.Isolator.(AppIsolator).App(log, ep, a); err != nil {
		return s.fail(log, err)
	}
	return 0
}

// hook runs inside the pod, called by its systemd units.
func (s Stage1) hook(argv []string) int {
	if err := podunit.Hook("/", argv, nil); err != nil {
		fmt.Fprintln(os.Stderr, s.Name+" hook:", err)
		return 1
	}
	return 0
}
