package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/attach"
)

// setupAttach gives the app (this process's stdio, which it inherits)
// pipes whose other ends a relay holds (stage2 relay, a child that
// outlives the exec): it listens on sock for enter --attach and copies
// the app's output to this process's stdout and stderr (the unit's
// journal streams) and to the attached clients. With once, the app's
// stdin closes when the first attach with stdin ends (pkg/attach).
func setupAttach(sock string, once bool) error {
	var p [3][2]*os.File // stdin, stdout, stderr: {read, write}
	for i := range p {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		defer r.Close()
		defer w.Close()
		p[i] = [2]*os.File{r, w}
	}
	if err := os.MkdirAll(filepath.Dir(sock), 0o700); err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("attach: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	ln.SetUnlinkOnClose(false) // the socket outlives this process's copy
	lf, err := ln.File()
	ln.Close()
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	defer lf.Close()
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("attach: %w", err)
	}
	args := []string{"relay"}
	if once {
		args = append(args, "--once")
	}
	c := exec.Command(self, args...)
	c.Stdout, c.Stderr = os.Stdout, os.Stderr
	// fds 3..6: the listener, the app's stdin (write), stdout and stderr (read).
	c.ExtraFiles = []*os.File{lf, p[0][1], p[1][0], p[2][0]}
	// Not in the app's process group: a signal to the app's group (a
	// terminal's ^C) is not the relay's.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := c.Start(); err != nil {
		return fmt.Errorf("attach: start relay: %w", err)
	}
	c.Process.Release()
	for fd, f := range []*os.File{p[0][0], p[1][1], p[2][1]} {
		if err := unix.Dup3(int(f.Fd()), fd, 0); err != nil {
			return fmt.Errorf("attach: %w", err)
		}
	}
	return nil
}

// cmdRelay: stage2 relay [--once], started by setupAttach with its fds.
func cmdRelay(args []string) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	once := fs.Bool("once", false, "close the app's stdin when the first attach ends it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lf := os.NewFile(3, "listener")
	ln, err := net.FileListener(lf)
	lf.Close()
	if err != nil {
		return fmt.Errorf("relay: %w", err)
	}
	r := &attach.Relay{
		Stdin: os.NewFile(4, "stdin"), Stdout: os.NewFile(5, "stdout"), Stderr: os.NewFile(6, "stderr"),
		Out: os.Stdout, Err: os.Stderr, Once: *once, Log: logger(false),
	}
	return r.Serve(ln)
}
