// Package vm boots a skiff guest in qemu: a kernel and initramfs, the pod
// tree shared over virtio-9p as the guest's root, and the guest agent on a
// virtio-serial port (see package agent). Start returns once the guest's
// init has said hello. A boot is watched for progress rather than timed:
// a guest whose console and qemu stay still for BootStall has hung (early
// boot hangs under TCG) and is killed and started again, while a slow
// boot on a busy host may take up to BootTimeout.
package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// VM is a running qemu whose guest has booted. Its methods are safe for
// concurrent use; agent requests are served one at a time.
type VM struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{} // closed when qemu has exited
	err    error         // qemu's exit; valid after done

	mu   sync.Mutex // serialises agent requests
	conn net.Conn
	ac   *agent.Conn

	fwd net.Conn // qemu's connection to cfg.ForwardSocket, or nil
}

// Start boots cfg and waits for the guest's hello, trying up to
// cfg.BootAttempts times when a boot stalls for cfg.BootStall, within
// cfg.BootTimeout in all. Cancelling ctx kills qemu.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*VM, error) {
	if cfg.Accel == "" {
		accel, err := AccelFromEnv(log)
		if err != nil {
			return nil, fmt.Errorf("start vm: %w", err)
		}
		cfg.Accel = accel
	}
	if cfg.Accel == "tcg" && cfg.TSCkHz == 0 {
		cfg.TSCkHz = HostTSCkHz()
	}
	if err := cfg.limitsFromEnv(); err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	cfg = cfg.withDefaults()
	args, err := cfg.Args()
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	os.Remove(cfg.AgentSocket)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: cfg.AgentSocket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("start vm: %w", err)
	}
	defer ln.Close() // one connection per qemu; the socket file goes too
	deadline := time.Now().Add(cfg.BootTimeout)
	for attempt := 1; ; attempt++ {
		log.Debug("boot vm", "attempt", attempt, "accel", cfg.Accel, "machine", cfg.Machine, "qemu", cfg.QEMU, "args", args)
		vm, err := boot(ctx, cfg, args, ln, deadline)
		if err == nil {
			return vm, nil
		}
		if !errors.Is(err, ErrBootStalled) || attempt >= cfg.BootAttempts {
			return nil, fmt.Errorf("start vm: %w", err)
		}
		// Keep the hung boot's console for diagnosis.
		failed := cfg.ConsoleLog + ".attempt" + strconv.Itoa(attempt)
		os.Rename(cfg.ConsoleLog, failed)
		log.Warn("guest boot hung, retrying", "attempt", attempt, "stalled", cfg.BootStall, "console", failed)
	}
}

func boot(ctx context.Context, cfg Config, args []string, ln *net.UnixListener, deadline time.Time) (*VM, error) {
	console, err := os.OpenFile(cfg.ConsoleLog, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run qemu: %w", err)
	}
	// Per qemu run: a killed run's connection must not be taken for the next's.
	var fwd *net.UnixListener
	if cfg.ForwardSocket != "" {
		os.Remove(cfg.ForwardSocket)
		if fwd, err = net.ListenUnix("unix", &net.UnixAddr{Name: cfg.ForwardSocket, Net: "unix"}); err != nil {
			console.Close()
			return nil, fmt.Errorf("run qemu: %w", err)
		}
		defer fwd.Close() // one connection per qemu; the socket file goes too
	}
	vm := &VM{
		cmd:    exec.CommandContext(ctx, cfg.QEMU, args...),
		stderr: new(bytes.Buffer),
		done:   make(chan struct{}),
	}
	vm.cmd.Stderr = vm.stderr
	vm.cmd.Stdout = console
	if cfg.Tap != nil {
		vm.cmd.ExtraFiles = []*os.File{cfg.Tap} // fd 3, as Args says
	}
	if cfg.Console != nil {
		vm.cmd.Stdout = io.MultiWriter(console, cfg.Console)
	}
	err = vm.cmd.Start()
	if errors.Is(err, exec.ErrNotFound) {
		err = fmt.Errorf("%w (install it: apt-get install qemu-system-x86)", err)
	}
	if err != nil {
		console.Close()
		return nil, fmt.Errorf("run qemu: %w", err)
	}
	go func() {
		vm.err = vm.cmd.Wait()
		console.Close()
		close(vm.done)
	}()
	if cfg.Started != nil {
		cfg.Started(vm.cmd.Process.Pid)
	}
	stopWatch := make(chan struct{})
	stalled := vm.watchBoot(cfg, stopWatch)
	hello := make(chan error, 1)
	go func() { hello <- vm.awaitHello(ln, deadline) }()
	select {
	case err = <-hello:
	case <-vm.done:
		ln.SetDeadline(time.Now()) // no hello will come
		err = <-hello
	}
	close(stopWatch)
	if <-stalled {
		<-vm.done
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w for %s", ErrBootStalled, cfg.BootStall)
	}
	if err == nil && fwd != nil {
		// qemu connected as it started, long before the hello.
		fwd.SetDeadline(deadline)
		if vm.fwd, err = fwd.AcceptUnix(); err != nil {
			err = fmt.Errorf("accept forward connection: %w", err)
		}
	}
	if err == nil {
		return vm, nil
	}
	exited := false
	select {
	case <-vm.done:
		exited = true
	default:
		vm.Kill()
		<-vm.done
	}
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case exited:
		return nil, fmt.Errorf("%w before the guest said hello: %v: %s", ErrExited, vm.err, bytes.TrimSpace(vm.stderr.Bytes()))
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, fmt.Errorf("%w (%s; %s sets the limit)", ErrBootTimeout, cfg.BootTimeout, EnvBootTimeout)
	}
	return nil, err
}

func (vm *VM) awaitHello(ln *net.UnixListener, deadline time.Time) error {
	ln.SetDeadline(deadline)
	conn, err := ln.AcceptUnix()
	if err != nil {
		return fmt.Errorf("accept agent connection: %w", err)
	}
	conn.SetDeadline(deadline)
	ac := agent.NewConn(conn)
	m, err := ac.Recv()
	if err != nil {
		conn.Close()
		return fmt.Errorf("wait for hello: %w", err)
	}
	if m.Op != agent.OpHello || m.Version != agent.Version {
		conn.Close()
		return fmt.Errorf("wait for hello: got %q version %d: %w", m.Op, m.Version, ErrAgent)
	}
	conn.SetDeadline(time.Time{})
	vm.conn, vm.ac = conn, ac
	return nil
}

// Run runs args in the guest and returns its exit status (128+signal when
// killed by one).
func (vm *VM) Run(ctx context.Context, args ...string) (int, error) {
	m, err := vm.request(ctx, agent.Message{Op: agent.OpRun, Args: args})
	if err != nil {
		return -1, fmt.Errorf("run %q in guest: %w", args, err)
	}
	if m.Op != agent.OpExit {
		return -1, fmt.Errorf("run %q in guest: unexpected reply %q: %w", args, m.Op, ErrAgent)
	}
	return m.Code, nil
}

// Poweroff asks the guest to shut down; Wait then returns when qemu is gone.
func (vm *VM) Poweroff(ctx context.Context) error {
	if _, err := vm.request(ctx, agent.Message{Op: agent.OpPoweroff}); err != nil {
		return fmt.Errorf("power off guest: %w", err)
	}
	return nil
}

func (vm *VM) request(ctx context.Context, req agent.Message) (agent.Message, error) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	// Unblock the exchange when ctx ends.
	stop := context.AfterFunc(ctx, func() { vm.conn.SetDeadline(time.Now()) })
	defer stop()
	if err := vm.ac.Send(req); err != nil {
		return agent.Message{}, err
	}
	m, err := vm.ac.Recv()
	if err != nil {
		if ctx.Err() != nil {
			return m, ctx.Err()
		}
		return m, err
	}
	if m.Op == agent.OpError {
		return m, fmt.Errorf("%w: %w", ErrAgent, agent.Codes(nil).Err(m))
	}
	return m, nil
}

// Wait waits for qemu to exit and returns nil when it exited with status 0.
func (vm *VM) Wait() error {
	<-vm.done
	vm.conn.Close()
	if vm.fwd != nil {
		vm.fwd.Close()
	}
	if vm.err != nil {
		return fmt.Errorf("wait for vm: %w: %v: %s", ErrExited, vm.err, bytes.TrimSpace(vm.stderr.Bytes()))
	}
	return nil
}

// Forward is the host end of the guest's agent.ForwardPortName port when
// Config.ForwardSocket was set, otherwise nil.
func (vm *VM) Forward() net.Conn { return vm.fwd }

// Pid is qemu's process id.
func (vm *VM) Pid() int { return vm.cmd.Process.Pid }

// Done is closed once qemu has exited.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Kill ends qemu at once.
func (vm *VM) Kill() error {
	if err := vm.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill vm: %w", err)
	}
	return nil
}
