package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/journal"
	"github.com/skiffpod/skiff/pkg/launch"
)

// cmdRun: stage2 run --bundle=DIR [--cgroups=DIR] [--journal=IDENT]
// [--attach=SOCK [--stdin-once]] [-- CMD [ARGS...]].
// The bundle holds spec.json, the app's rootfs and the files the spec's
// bind mounts name relatively. --cgroups names a directory whose
// subdirectories are cgroups (one per controller) to join first: where the
// pod's systemd cannot set an app's limits, stage1 sets them there.
// With CMD, CMD runs in the app's place, in its root and with its
// restrictions: the pod's units run the app's event handlers (appc's
// pre-start and post-stop) so, each in a mount namespace of its own.
// --attach gives the app stdio that enter --attach reaches (setupAttach).
// --journal connects stdout and stderr to journald apart (connectJournal).
func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bundle := fs.String("bundle", "", "bundle directory (spec.json, rootfs)")
	cgroups := fs.String("cgroups", "", "join each cgroup DIR/*/ first")
	debug := fs.Bool("debug", false, "log what is done")
	stdin := fs.String("stdin", "", "the app's stdin: a file (a FIFO) opened before anything else")
	sock := fs.String("attach", "", "give the app stdio that enter --attach reaches through this socket")
	once := fs.Bool("stdin-once", false, "with --attach: close the app's stdin when the first attach ends it")
	ident := fs.String("journal", "", "connect stdout and stderr to journald streams of their own, with this identifier")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bundle == "" {
		return errors.New("usage: stage2 run --bundle=DIR [-- CMD [ARGS...]]")
	}
	if *ident != "" {
		connectJournal(journal.StdoutSocket, *ident)
	}
	if *stdin != "" {
		if err := openStdin(*stdin); err != nil {
			return err
		}
	}
	if *sock != "" {
		if err := setupAttach(*sock, *once); err != nil {
			return err
		}
	}
	if *cgroups != "" {
		if err := joinCgroups(*cgroups); err != nil {
			return err
		}
	}
	s, err := appspec.Read(*bundle)
	if err != nil {
		return err
	}
	logger(*debug).Debug("run", "bundle", *bundle, "app", s.Annotations[appspec.AnnotationApp], "args", s.Process.Args, "handler", fs.Args())
	if wantsPIDNamespace(s) {
		code, err := runInPIDNamespace(append([]string{"run"}, args...))
		if err != nil {
			return fmt.Errorf("pid namespace: %w", err)
		}
		return exitStatus(code)
	}
	return launch.Run(*bundle, s, fs.Args())
}

// connectJournal makes stdout and stderr two journald streams of their
// own, identified as ident, with PRIORITY 6 and 3 (journal.Stream):
// systemd gives a unit's stdout and stderr one stream, and the CRI's log
// must tell them apart. Both are forwarded to the console as well, as the
// unit's journal+console did. Where journald cannot be reached, the
// unit's stream stays, and a line says why.
func connectJournal(socket, ident string) {
	for _, s := range []struct {
		fd       int
		priority int
	}{{1, journal.PriorityStdout}, {2, journal.PriorityStderr}} {
		f, err := journal.Stream(socket, ident, s.priority, true)
		if err == nil {
			err = syscall.Dup3(int(f.Fd()), s.fd, 0)
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "stage2: output to the unit's journal stream: %v\n", err)
		}
	}
}

// openStdin makes path the process's stdin, which the app inherits.
func openStdin(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open stdin: %w", err)
	}
	defer f.Close()
	if err := syscall.Dup3(int(f.Fd()), 0, 0); err != nil {
		return fmt.Errorf("open stdin: %w", err)
	}
	return nil
}

// joinCgroups moves the process into every cgroup dir/*/ (none is fine).
func joinCgroups(dir string) error {
	procs, _ := filepath.Glob(filepath.Join(dir, "*", "cgroup.procs"))
	for _, f := range procs {
		if err := os.WriteFile(f, []byte("0"), 0); err != nil {
			return fmt.Errorf("join cgroup: %w", err)
		}
	}
	return nil
}
