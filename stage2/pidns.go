package main

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// envInPIDNamespace marks the stage2 started in the app's own PID
// namespace, which goes on to launch the app there.
const envInPIDNamespace = "SKIFF_STAGE2_PIDNS"

// wantsPIDNamespace: the spec asks for a PID namespace of the app's own
// (pod.AnnotationPIDNamespace) and this stage2 is not in it yet.
func wantsPIDNamespace(s *specs.Spec) bool {
	if s.Linux == nil || os.Getenv(envInPIDNamespace) == "1" {
		return false
	}
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.PIDNamespace })
}

// runInPIDNamespace runs stage2 again with args as the first process of a
// new PID namespace, where it launches the app as PID 1 (its /proc, mounted
// there, shows only the app's processes). This stage2 stays the unit's
// main process: it passes signals on and ends as the app does.
func runInPIDNamespace(args []string) (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	c := exec.Command(self, args...)
	c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
	c.Env = append(os.Environ(), envInPIDNamespace+"=1")
	c.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs)
	if err := c.Start(); err != nil {
		return 0, err
	}
	go func() {
		for s := range sigs {
			if s != syscall.SIGCHLD && s != syscall.SIGURG {
				c.Process.Signal(s)
			}
		}
	}()
	err = c.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// Die as the app died, so systemd sees the same end.
			signal.Reset(ws.Signal())
			syscall.Kill(os.Getpid(), ws.Signal())
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}
