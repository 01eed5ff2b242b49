package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// serve says hello on port, then either execs initPath (systemd takes over
// as PID 1) or answers agent requests until told to power off.
func serve(port *os.File, initPath string) error {
	c := agent.NewConn(port)
	if err := c.Send(agent.Message{Op: agent.OpHello, Version: agent.Version}); err != nil {
		return err
	}
	if initPath != "" {
		port.Close()
		err := unix.Exec(initPath, []string{initPath}, os.Environ())
		return fmt.Errorf("exec %s: %w", initPath, err)
	}
	for {
		req, err := c.Recv()
		if err != nil {
			return err
		}
		switch req.Op {
		case agent.OpRun:
			err = c.Send(runCommand(req.Args))
		case agent.OpPoweroff:
			unix.Sync()
			if err = c.Send(agent.Message{Op: agent.OpOK}); err == nil {
				return errors.New("powering off as asked")
			}
		default:
			err = c.Send(agent.Codes(nil).Failure(fmt.Errorf("%w %q", agent.ErrUnknownOp, req.Op)))
		}
		if err != nil {
			return err
		}
	}
}

// runCommand runs args with the console as stdio and reports how it ended.
func runCommand(args []string) agent.Message {
	if len(args) == 0 {
		return agent.Message{Op: agent.OpError, Error: "run: no command"}
	}
	cmd := exec.Command(args[0], args[1:]...)
	// The console, not /dev/null: the share may have no /dev.
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	err := cmd.Run()
	reapOrphans()
	return agent.Exit(err)
}

// reapOrphans collects exited processes re-parented to PID 1. Commands run
// one at a time, so this cannot steal the status cmd.Wait is after.
func reapOrphans() {
	for {
		pid, err := unix.Wait4(-1, nil, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
