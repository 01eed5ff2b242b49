package kvm

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/pty"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/pkg/strictjson"
	"github.com/skiffpod/skiff/pkg/vm/agent"
	"github.com/skiffpod/skiff/stage1-kvm/guest"
)

// The host side of enter and stop: they talk to the guest's agent through
// qemu's control socket in the pod directory (the working directory).

// startTimeout is how long stop and enter wait for a pod that is locked
// (running, for stage0) but whose qemu run has not started yet.
const startTimeout = stage1kit.StartTimeout

// qemuPid returns the pid run recorded, after checking that the process
// still has the pod directory as its working directory (run starts qemu
// there): a stale pid may have been reused.
func qemuPid() (int, error) {
	pid, err := stage1kit.ReadPid()
	if err != nil {
		return 0, fmt.Errorf("find pod's qemu: %w: %w", ErrNotRunning, err)
	}
	var a, c unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/cwd", pid), &a) != nil || unix.Stat(".", &c) != nil || a.Ino != c.Ino || a.Dev != c.Dev {
		return 0, fmt.Errorf("find pod's qemu: %w: pid %d is not the pod's", ErrNotRunning, pid)
	}
	return pid, nil
}

// Stop asks the guest's systemd for a clean poweroff; force kills qemu.
func (Isolator) Stop(_ *slog.Logger, a pod.StopArgs) error {
	if !a.Force {
		return poweroff()
	}
	pid, err := qemuPid()
	if err != nil {
		return err
	}
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	return nil
}

// control is one session with the guest's agent.
type control struct {
	*agent.Conn
	conn net.Conn
}

// close ends the session and then the connection: the guest sees one byte
// stream whoever connects, so only OpEnd tells it this session is over
// (agent.Serve).
func (c control) close() {
	c.Send(agent.Message{Op: agent.OpEnd})
	c.conn.Close()
}

// dialControl connects to the guest's agent. qemu serves one client at a
// time; a second waits until the first is done.
func dialControl() (control, error) {
	conn, err := net.Dial("unix", controlSocket)
	for deadline := time.Now().Add(startTimeout); errors.Is(err, os.ErrNotExist) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		conn, err = net.Dial("unix", controlSocket)
	}
	if err != nil {
		return control{}, fmt.Errorf("connect to the guest: %w: %w", ErrNotRunning, err)
	}
	c := agent.NewConn(conn)
	c.SetSession()
	return control{c, conn}, nil
}

// poweroff asks the guest for a clean poweroff and waits for its answer:
// the agent may still be starting.
func poweroff() error {
	c, err := dialControl()
	if err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	defer c.close()
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Send(agent.Message{Op: agent.OpPoweroff}); err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	m, err := c.Recv()
	if err == nil && m.Op != agent.OpOK {
		if err = guest.Codes.Err(m); err == nil {
			err = fmt.Errorf("unexpected %q", m.Op)
		}
	}
	if err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	return nil
}

// Enter runs cmd in app of the running pod through the guest's agent,
// streaming stdio both ways, and returns cmd's exit status.
// With --mount-image (skiff debug) the host directory is bound read-only
// into the shared tree for the time of the command, and the agent mounts
// it into the app as stage1-ns does (docs/debug.md).
func (Isolator) Enter(_ *slog.Logger, a pod.EnterArgs) (int, error) {
	if a.Stats {
		return 0, stats(a.App)
	}
	if a.Resources != "" {
		return 0, setResources(a.App, a.Resources)
	}
	if a.PortForward != 0 {
		return 0, portForward(a.PortForward, os.Stdin, os.Stdout)
	}
	if a.Attach {
		return 0, attachApp(a)
	}
	m := agent.Message{Op: agent.OpEnter, App: a.App, Args: a.Cmd, CapAdd: a.CapAdd, Term: os.Getenv("TERM"), TTY: a.TTY}
	var resize <-chan pty.Size
	if a.TTY {
		// The terminal is allocated in the guest; this one's keys and
		// sizes go there.
		var size pty.Size
		var restore func()
		size, resize, restore = pty.Caller()
		defer restore()
		m.Rows, m.Cols = size.Rows, size.Cols
	}
	if len(a.Cmd) == 0 {
		return 0, fmt.Errorf("enter: %w: no command", ErrUsage)
	}
	// Without a terminal the command's signals come through enter (on
	// stage1-ns the command is in enter's process group): SIGINT, SIGQUIT,
	// SIGTERM and SIGHUP are passed on to its group in the guest, and
	// enter returns when it has ended. On a terminal they are its keys.
	sigs := make(chan os.Signal, 4)
	if !a.TTY {
		signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGHUP)
		defer signal.Stop(sigs)
	}
	if a.MountImage != "" {
		guest, undo, err := shareTools(a.MountImage)
		if err != nil {
			return 0, fmt.Errorf("enter %s: %w", a.App, err)
		}
		m.MountImage = guest
		if a.TTY {
			// ^C and ^\ are for the command: dying here would leave the bind.
			signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT)
			defer signal.Stop(sigs)
			sigs = nil
		}
		code, err := enter(m, os.Stdin, os.Stdout, os.Stderr, resize, sigs)
		return code, errors.Join(err, undo())
	}
	if a.TTY {
		sigs = nil
	}
	return enter(m, os.Stdin, os.Stdout, os.Stderr, resize, sigs)
}

func enter(m agent.Message, stdin io.Reader, stdout, stderr io.Writer, resize <-chan pty.Size, sigs <-chan os.Signal) (int, error) {
	app := m.App
	c, err := dialControl()
	if err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	defer c.close()
	if err := c.Send(m); err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	go func() {
		for sig := range sigs {
			if c.Send(agent.Message{Op: agent.OpSignal, Code: int(sig.(unix.Signal))}) != nil {
				return
			}
		}
	}()
	if resize != nil {
		go func() {
			for s := range resize {
				if c.Send(agent.Message{Op: agent.OpResize, Rows: s.Rows, Cols: s.Cols}) != nil {
					return
				}
			}
		}()
	}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 && c.Send(agent.Message{Op: agent.OpStdin, Data: buf[:n]}) != nil {
				return
			}
			if err != nil {
				c.Send(agent.Message{Op: agent.OpStdin}) // end of input
				return
			}
		}
	}()
	for {
		m, err := c.Recv()
		if err != nil {
			return 0, fmt.Errorf("enter %s: %w", app, err)
		}
		switch m.Op {
		case agent.OpStdout:
			stdout.Write(m.Data)
		case agent.OpStderr:
			stderr.Write(m.Data)
		case agent.OpExit:
			return m.Code, nil
		case agent.OpError:
			return 0, fmt.Errorf("enter %s: %w", app, guest.Codes.Err(m))
		default:
			return 0, fmt.Errorf("enter %s: unexpected %q", app, m.Op)
		}
	}
}

// stats writes app's usage, which the guest's agent reads from the
// guest's cgroups, to stdout (enter --stats). The reply is the guest's: it
// is decoded and encoded again, never copied through.
func stats(app string) error {
	c, err := dialControl()
	if err != nil {
		return fmt.Errorf("stats of %s: %w", app, err)
	}
	defer c.close()
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Send(agent.Message{Op: agent.OpStats, App: app}); err != nil {
		return fmt.Errorf("stats of %s: %w", app, err)
	}
	m, err := c.Recv()
	if err != nil {
		return fmt.Errorf("stats of %s: %w", app, err)
	}
	if m.Op != agent.OpStats {
		if err = guest.Codes.Err(m); err == nil {
			err = fmt.Errorf("unexpected %q", m.Op)
		}
		return fmt.Errorf("stats of %s: %w", app, err)
	}
	var st pod.AppStats
	if err := strictjson.Unmarshal(m.Data, &st); err != nil {
		return fmt.Errorf("stats of %s: %w", app, err)
	}
	return json.NewEncoder(os.Stdout).Encode(st)
}

// setResources gives the running app the limits of enter --resources:
// the guest's systemd owns its cgroups, so they become the app unit's
// properties there (systemctl set-property --runtime, through the agent).
func setResources(app, res string) error {
	r, err := pod.ParseResources(res)
	if err != nil {
		return fmt.Errorf("resources of %s: %w: %w", app, ErrUsage, err)
	}
	props := podunit.ResourceProperties(r)
	if len(props) == 0 {
		return nil
	}
	return systemctl(append([]string{"set-property", "--runtime", podunit.UnitName(app)}, props...)...)
}

// GC undoes what run did on the host for an exited pod: a qemu left over
// from a crashed run, and the volumes bound into the shared tree. It never
// follows what the guest could have written (the mount table names the
// mounts, not the tree).
func (Isolator) GC(*slog.Logger, pod.GCArgs) error {
	var errs []error
	// gc runs on pods that have ended: one whose run failed before qemu
	// started has no pid file, and waiting for one (as stop does) would
	// only cost the StartTimeout.
	if _, err := os.Stat(pod.PidFile); err == nil {
		if pid, err := qemuPid(); err == nil {
			errs = append(errs, unix.Kill(pid, unix.SIGKILL))
		}
	}
	errs = append(errs, unmountVolumes())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("gc pod: %w", err)
	}
	return nil
}
