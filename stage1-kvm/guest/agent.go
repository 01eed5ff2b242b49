package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/cgstat"
	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pgroup"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/pty"
	"github.com/skiffpod/skiff/pkg/vm/agent"
)

// Agent is the guest side of enter, stop and the app entrypoints' systemctl, started by systemd in the
// guest. It serves the control port (agent.Serve: one reader for the
// port's life, sessions framed by messages) until the port goes away.
func Agent(log *slog.Logger) error {
	port, err := openPort("/", agent.ControlPortName)
	if err != nil {
		return err
	}
	defer port.Close()
	serveForward(log)
	// The apps start after this (the unit is Type=notify, the apps' After= it).
	daemon.SdNotify(false, daemon.SdNotifyReady)
	err = agent.Serve(port, log, func(s *agent.Session) agent.Message {
		m := s.Req
		log.Debug("request", "op", m.Op, "app", m.App, "args", m.Args)
		switch m.Op {
		case agent.OpPoweroff:
			if err := podunit.Stopping("/"); err != nil {
				log.Warn("poweroff", "err", err)
			}
			s.Send(agent.Message{Op: agent.OpOK})
			unix.Kill(1, podunit.SigPoweroff)
			return agent.Message{Op: agent.OpOK} // dropped: the session ends with the guest
		case agent.OpEnter:
			return enter(s)
		case agent.OpRun:
			return runSystemctl(m.Args)
		case agent.OpStats:
			return appStats("/sys/fs/cgroup", m.App)
		}
		return Codes.Failure(fmt.Errorf("%w %q", agent.ErrUnknownOp, m.Op))
	})
	return fmt.Errorf("agent: %w", err)
}

// runSystemctl serves a run request: the host's app sandbox entrypoints
// drive the pod's systemd (docs/app-sandbox.md), so only the guest's
// systemctl is run; anything else is refused.
func runSystemctl(args []string) agent.Message {
	if len(args) == 0 || args[0] != SystemctlPath {
		return Codes.Failure(fmt.Errorf("%w: run %q", agent.ErrUnknownOp, args))
	}
	return agent.Exit(exec.Command(args[0], args[1:]...).Run())
}

// appStats serves a stats request: the usage of app's unit in the guest's
// cgroup tree at root (cgroup v2: systemd's), where the host cannot look.
func appStats(root, app string) agent.Message {
	u, err := cgstat.Read(filepath.Join(root, "system.slice", podunit.UnitName(app)))
	if errors.Is(err, os.ErrNotExist) {
		err = fmt.Errorf("stats of app %s: %w: it does not run", app, pod.ErrNoApp)
	}
	if err != nil {
		return Codes.Failure(err)
	}
	b, err := json.Marshal(pod.AppStats{CPUNanos: u.CPUNanos, WorkingSetBytes: u.WorkingSet, RSSBytes: u.RSS})
	if err != nil {
		return Codes.Failure(err)
	}
	return agent.Message{Op: agent.OpStats, Data: b}
}

// openPort finds a virtio-serial port by name under root's /sys and /dev
// (the guest has no udev to make /dev/virtio-ports links).
func openPort(root, name string) (*os.File, error) {
	names, _ := filepath.Glob(filepath.Join(root, "sys/class/virtio-ports/*/name"))
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		return os.OpenFile(filepath.Join(root, "dev", filepath.Base(filepath.Dir(n))), os.O_RDWR, 0)
	}
	return nil, fmt.Errorf("open virtio port %s: %w", name, os.ErrNotExist)
}

// enter runs the request's command in its app, as stage1-ns's enter does
// on the host: in the app's cgroup, nsenter joins the app's namespaces and
// root and runs stage2 exec, which loads the filters the guest's init
// holds (those every app inherited; none today) and applies the app's
// user, capabilities, no_new_privs and seccomp. stage2, the bundle and the
// filters are passed as fds because none is visible from inside the app's
// root. stdin comes from the session's
// messages; stdout and stderr stream back. It returns the final reply.
func enter(s *agent.Session) agent.Message {
	m := s.Req
	fail := func(err error) agent.Message {
		return Codes.Failure(err) // the host says which app
	}
	if len(m.Args) == 0 {
		return fail(fmt.Errorf("%w: no command", pod.ErrUsage))
	}
	pid, err := launchedApp(m.App)
	if err != nil {
		return fail(err)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fail(err)
	}
	cgroup, err := os.Open(filepath.Join("/sys/fs/cgroup", unifiedCgroup(string(cg))))
	if err != nil {
		return fail(err)
	}
	defer cgroup.Close()
	var files []*os.File
	for _, p := range []string{podunit.Stage2Path, podunit.Bundle(m.App)} {
		f, err := os.Open(p)
		if err != nil {
			return fail(err)
		}
		defer f.Close()
		files = append(files, f)
	}
	filters, err := inheritedFilters()
	if err != nil {
		return fail(err)
	}
	defer filters.Close()
	files = append(files, filters)
	argv := []string{"--target=" + strconv.Itoa(pid),
		"--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", "--",
		"/proc/self/fd/3", "exec", "--bundle=/proc/self/fd/4", "--filters=/proc/self/fd/5"}
	if m.CapAdd != "" {
		argv = append(argv, "--cap-add="+m.CapAdd)
	}
	if m.MountImage != "" {
		// As stage1-ns's enter does (docs/debug.md), here in the guest.
		root, err := launch.AppRoot(pid)
		if err != nil {
			return fail(err)
		}
		tree, point, remove, err := launch.PrepareTools(root, m.MountImage)
		unix.Close(root)
		if err != nil {
			return fail(err)
		}
		defer remove()
		for _, fd := range []int{tree, point} {
			unix.CloseOnExec(fd) // reaches nsenter as an ExtraFile only, not other commands
			f := os.NewFile(uintptr(fd), "tools")
			defer f.Close()
			files = append(files, f)
		}
		argv = append(argv, "--mount-tree=6", "--mount-point=7")
	}
	argv = append(append(argv, "--"), m.Args...)
	cmd := exec.Command(NsenterPath, argv...)
	cmd.ExtraFiles = files
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	if m.Term != "" {
		cmd.Env = append(cmd.Env, "TERM="+m.Term) // stage2 exec gives it to the command
	}
	// A group of its own, which the host's signals reach (the terminal's
	// session is one too).
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cgroup.Fd()), Setpgid: !m.TTY}
	if m.TTY {
		return onTerminal(s, cmd, fail) // the terminal's keys are its signals
	}
	g := &group{}
	cmd.Stdout = stream{s, agent.OpStdout}
	cmd.Stderr = stream{s, agent.OpStderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	if err := cmd.Start(); err != nil {
		return fail(err)
	}
	g.started(cmd.Process.Pid)
	go func() {
		for m := range s.In {
			switch {
			case m.Op == agent.OpSignal:
				g.signal(syscall.Signal(m.Code))
			case m.Op != agent.OpStdin:
			case len(m.Data) == 0:
				stdin.Close()
			default:
				stdin.Write(m.Data) // fails once the command has ended; keep draining
			}
		}
		stdin.Close()
		g.signal(syscall.SIGKILL) // the session ended: the host left before the command did
	}()
	exit := agent.Exit(cmd.Wait())
	if exit.Op == agent.OpError {
		return fail(errors.New(exit.Error))
	}
	return g.done(exit)
}

// group is an entered command's process group, which the host's signals
// reach while the command runs. A host whose enter was terminated (the CRI
// server ends a timed-out ExecSync so) forwards that signal; a session that
// ends before its command (a host that left without waiting) kills the
// group, so that no command outlives the host that ran it unseen.
type group struct {
	mu        sync.Mutex
	pgid      int  // 0 before the command started and after it ended
	signalled bool // a signal was sent to the group
}

// groupGoneTimeout bounds how long a signalled command's reply waits for
// the rest of its group.
const groupGoneTimeout = 5 * time.Second

func (g *group) started(pid int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pgid = pid
}

// signal sends sig to the group while the command runs.
func (g *group) signal(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.pgid != 0 && sig > 0 && sig < 65 {
		unix.Kill(-g.pgid, sig)
		g.signalled = true
	}
}

// done marks the command ended and returns its reply; when it was
// signalled, only once no process of its group is left, zombies included
// (pgroup.Gone: the command nsenter ran is reparented to the pod's init,
// which reaps it a moment later), so that the host's next command in the
// pod finds none of it.
func (g *group) done(reply agent.Message) agent.Message {
	g.mu.Lock()
	pgid, signalled := g.pgid, g.signalled
	g.pgid = 0
	g.mu.Unlock()
	if signalled && pgid != 0 {
		pgroup.Gone(pgid, groupGoneTimeout)
	}
	return reply
}

// onTerminal runs cmd on a pseudo-terminal of the guest's devpts, for an
// enter with TTY: the session's stdin is typed on it (its end ends
// nothing: a terminal has none), its resizes set its size, and its output
// streams back as stdout.
func onTerminal(s *agent.Session, cmd *exec.Cmd, fail func(error) agent.Message) agent.Message {
	in, typed := io.Pipe()
	resize := make(chan pty.Size, 1)
	go func() {
		defer typed.Close()
		for m := range s.In {
			switch {
			case m.Op == agent.OpResize:
				select {
				case <-resize: // only the latest size matters
				default:
				}
				resize <- pty.Size{Rows: m.Rows, Cols: m.Cols}
			case len(m.Data) > 0:
				typed.Write(m.Data) // fails once the command has ended; keep draining
			}
		}
	}()
	exit := agent.Exit(pty.Run(cmd, "/dev/ptmx", in, stream{s, agent.OpStdout}, pty.Size{Rows: s.Req.Rows, Cols: s.Req.Cols}, resize))
	in.Close()
	if exit.Op == agent.OpError {
		return fail(errors.New(exit.Error))
	}
	return exit
}

// inheritedFilters returns a memfd holding the seccomp filters of the
// guest's init, which every app inherits through systemd.
func inheritedFilters() (*os.File, error) {
	filters, err := launch.Filters(1)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("skiff-filters", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create filters file: %w", err)
	}
	f := os.NewFile(uintptr(fd), "filters")
	if err := launch.WriteFilters(f, filters); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stream sends what a command writes as messages of one kind.
type stream struct {
	s  *agent.Session
	op string
}

// Once the host has left the session the output is dropped, and the
// command runs on as it would with its terminal gone.
func (s stream) Write(p []byte) (int, error) {
	if err := s.s.Send(agent.Message{Op: s.op, Data: p}); err != nil && !errors.Is(err, agent.ErrSessionEnded) {
		return 0, err
	}
	return len(p), nil
}

// appReadyTimeout bounds the wait for an app that systemd has started but
// stage2 is still setting up (enter may come before the pod is ready).
const appReadyTimeout = 10 * time.Second

// launchedApp waits until app's main process is the app itself, no longer
// the hook or stage2 that become it, and returns its pid.
func launchedApp(app string) (int, error) {
	deadline := time.Now().Add(appReadyTimeout)
	for {
		pid, err := appPid("/proc", app)
		if err != nil {
			return 0, err
		}
		if !podunit.Launching("/", pid) {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("find app %s: still starting after %s", app, appReadyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// appPid finds the main process of app's unit: the child of PID 1 (the
// guest's systemd) whose cgroup is the unit's.
func appPid(proc, app string) (int, error) {
	b, err := os.ReadFile(filepath.Join(proc, "1/task/1/children"))
	if err != nil {
		return 0, fmt.Errorf("find app %s: %w", app, err)
	}
	for _, f := range strings.Fields(string(b)) {
		cg, err := os.ReadFile(filepath.Join(proc, f, "cgroup"))
		if err == nil && strings.HasSuffix(unifiedCgroup(string(cg)), "/"+podunit.UnitName(app)) {
			pid, err := strconv.Atoi(f)
			return podunit.AppProcess(proc, pid), err
		}
	}
	return 0, fmt.Errorf("find app %s: %w", app, pod.ErrNoApp)
}

// unifiedCgroup returns the cgroup v2 path in a /proc/PID/cgroup file.
func unifiedCgroup(procCgroup string) string {
	for _, l := range strings.Split(strings.TrimSpace(procCgroup), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok {
			return p
		}
	}
	return ""
}
