package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	uuidpkg "github.com/google/uuid"
	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/attach"
	"github.com/skiffpod/skiff/pkg/launch"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/pty"
	"github.com/skiffpod/skiff/pkg/stage1kit"
)

// podInit returns the host pid of the running pod's init, from the pid
// file run wrote in the pod directory (the working directory), after
// checking that this process still has the pod's stage1 rootfs as its
// root: a stale pid may have been reused.
func podInit() (int, error) {
	pid, err := stage1kit.ReadPid()
	if err != nil {
		return 0, fmt.Errorf("find pod init: %w: %w", ErrNotRunning, err)
	}
	var a, c unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/root%s", pid, pod.InPodStatusDir), &a) != nil ||
		unix.Stat(pod.AppStatusDir, &c) != nil || a.Ino != c.Ino || a.Dev != c.Dev {
		return 0, fmt.Errorf("find pod init: %w: pid %d is not the pod's", ErrNotRunning, pid)
	}
	return pid, nil
}

// Stop asks the pod's systemd for a clean poweroff; force kills the pod's
// init, which takes every process of the pod with it.
func (Isolator) Stop(_ *slog.Logger, a pod.StopArgs) error {
	force := a.Force
	pid, err := podInit()
	if err != nil {
		return err
	}
	sig := podunit.SigPoweroff
	if force {
		sig = unix.SIGKILL
	} else if err := podunit.Stopping(pod.Stage1Rootfs); err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	// The kernel drops a signal the pod's init neither catches nor
	// blocks: until its systemd blocks it (blocks), a poweroff would be lost.
	for deadline := time.Now().Add(stage1kit.StartTimeout); !force && !blocks(pid, sig) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := unix.Kill(pid, sig); err != nil {
		return fmt.Errorf("stop pod: %w", err)
	}
	return nil
}

// GC undoes what run did on the host for the pod uuid: what is left of a
// pod whose run and nspawn were killed (its processes, killed), its
// cgroups, nspawn's propagation directory and the journal link nspawn may
// have made. It only removes, never follows, what the pod could have written.
func (Isolator) GC(_ *slog.Logger, a pod.GCArgs) error {
	uuid := a.UUID
	if err := uuidpkg.Validate(uuid); err != nil {
		// It names host paths (cgroups whose processes are killed).
		return fmt.Errorf("gc: %w: pod uuid %q: %v", ErrUsage, uuid, err)
	}
	removePropagate(uuid)
	err := killPod(uuid)
	if err == nil {
		err = removeCgroups(uuid)
	}
	link := "/var/log/journal/" + pod.MachineID(uuid)
	if fi, lerr := os.Lstat(link); lerr == nil && fi.Mode()&os.ModeSymlink != 0 {
		err = errors.Join(err, os.Remove(link))
	}
	if err != nil {
		return fmt.Errorf("gc pod %s: %w", uuid, err)
	}
	return nil
}

// Enter replaces the calling process with cmd running in app of the
// running pod, holding nothing the app does not: it joins the app's
// cgroups, drops from its bounding set what nspawn dropped for the pod,
// then nsenter joins the app's namespaces and root and runs stage2 exec,
// which loads the seccomp filters the pod's init holds (nspawn's, which
// every app inherited) and applies the app's user, capabilities,
// no_new_privs and seccomp filter before it execs cmd. stage2, the app's
// bundle and the filters are passed as open fds because none is visible
// from inside the app's root. It returns only on failure.
//
// With --mount-image (skiff debug) it runs cmd as a child instead and
// waits for it: it makes the mount point in the app's /dev, stage2 mounts
// the image there in a mount namespace of cmd's own, and Enter removes
// the mount point again when cmd has ended (docs/debug.md). --cap-add
// passes capabilities on to stage2, which adds them to the app's.
//
// With --tty it also runs cmd as a child, on a pseudo-terminal of the
// host's devpts, copying the caller's stdio to and from it. With --attach
// it connects the caller's stdio to the app's relay instead (attachApp).
func (Isolator) Enter(log *slog.Logger, a pod.EnterArgs) (int, error) {
	return enter(log, a)
}

func enter(log *slog.Logger, a pod.EnterArgs) (int, error) {
	app, cmd := a.App, a.Cmd
	if a.Attach {
		return 0, attachApp(a)
	}
	if len(cmd) == 0 {
		return 0, fmt.Errorf("enter: %w: no command", ErrUsage)
	}
	init, err := podInit()
	if err != nil {
		return 0, err
	}
	pid, err := appPid(init, app)
	if err != nil {
		return 0, err
	}
	if err := joinCgroups(pid); err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	filters, err := launch.Filters(init)
	if err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	// Opened without close-on-exec, so that they survive into stage2.
	var fds [3]int
	for i, p := range []string{filepath.Join(pod.Stage1Rootfs, podunit.Stage2Path), pod.AppDir(app)} {
		if fds[i], err = unix.Open(p, unix.O_RDONLY, 0); err != nil {
			return 0, fmt.Errorf("enter %s: open %s: %w", app, p, err)
		}
	}
	if fds[2], err = unix.MemfdCreate("skiff-filters", 0); err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	var buf bytes.Buffer
	if err := launch.WriteFilters(&buf, filters); err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	if _, err := unix.Write(fds[2], buf.Bytes()); err != nil {
		return 0, fmt.Errorf("enter %s: write filters: %w", app, err)
	}
	own, err := ownUserNS(pid)
	if err != nil {
		return 0, fmt.Errorf("enter %s: %w", app, err)
	}
	argv := []string{"nsenter", "--target=" + strconv.Itoa(pid)}
	if own {
		// A --private-users pod: the command is root of the pod's user
		// namespace (nsenter sets uid and gid 0 there), never the host's.
		argv = append(argv, "--user")
	}
	argv = append(argv, "--mount", "--uts", "--ipc", "--net", "--pid", "--cgroup", "--root", "--wd", "--",
		fmt.Sprintf("/proc/self/fd/%d", fds[0]), "exec", fmt.Sprintf("--bundle=/proc/self/fd/%d", fds[1]),
		fmt.Sprintf("--filters=/proc/self/fd/%d", fds[2]))
	if a.CapAdd != "" {
		log.Debug("adding capabilities", "app", app, "caps", a.CapAdd)
		argv = append(argv, "--cap-add="+a.CapAdd)
	}
	var remove func() error
	if a.MountImage != "" {
		var tree, point int
		root, err := launch.AppRoot(pid)
		if err != nil {
			return 0, fmt.Errorf("enter %s: %w", app, err)
		}
		tree, point, remove, err = launch.PrepareTools(root, a.MountImage)
		unix.Close(root)
		if err != nil {
			return 0, fmt.Errorf("enter %s: %w", app, err)
		}
		argv = append(argv, fmt.Sprintf("--mount-tree=%d", tree), fmt.Sprintf("--mount-point=%d", point))
	}
	argv = append(append(argv, "--"), cmd...)
	// The bounding set is per thread: drop on the one that execs (or forks).
	runtime.LockOSThread()
	if err := boundLike(init); err != nil {
		return 0, errors.Join(fmt.Errorf("enter %s: %w", app, err), call(remove))
	}
	if remove == nil && !a.TTY {
		return 0, fmt.Errorf("enter %s: exec nsenter: %w", app, unix.Exec(nsenter, argv, os.Environ()))
	}
	code, err := wait(nsenter, argv, a.TTY)
	if err != nil {
		err = fmt.Errorf("enter %s: %w", app, err)
	}
	return code, errors.Join(err, call(remove))
}

// attachApp connects the caller's stdio to app's relay (pkg/attach), whose
// socket stage2 made in the stage1 rootfs, the pod's root.
func attachApp(a pod.EnterArgs) error {
	if _, err := podInit(); err != nil {
		return err
	}
	conn, err := attach.Dial(pod.Stage1Rootfs, strings.TrimPrefix(podunit.AttachSocket(a.App), "/"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("attach %s: %w: it does not run, or was not created with a stdin to attach to", a.App, ErrNoApp)
	}
	if err != nil {
		return fmt.Errorf("attach %s: %w", a.App, err)
	}
	return attach.Caller(conn, a.App, a.Stdin)
}

func call(f func() error) error {
	if f == nil {
		return nil
	}
	return f()
}

// wait runs argv (from path) with the caller's stdio, or with tty on a
// pseudo-terminal of its own (pty.RunOnCaller), and returns its exit
// status, 128+signal when it was killed. A terminal's ^C or ^\ is for the
// command: this process catches them rather than die and leave the mount
// point behind.
func wait(path string, argv []string, tty bool) (int, error) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGQUIT)
	defer signal.Stop(sigs)
	c := exec.Command(path, argv[1:]...)
	c.Args[0] = argv[0]
	var err error
	if tty {
		// The host's devpts: the command holds the terminal as it would
		// hold the caller's without --tty.
		err = pty.RunOnCaller(c, "/dev/ptmx")
	} else {
		c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
		err = c.Run()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 0, err
}

// ownUserNS reports whether process pid is in another user namespace than
// the caller (a pod with --private-users).
func ownUserNS(pid int) (bool, error) {
	self, err := os.Stat("/proc/self/ns/user")
	if err != nil {
		return false, err
	}
	other, err := os.Stat(fmt.Sprintf("/proc/%d/ns/user", pid))
	if err != nil {
		return false, err
	}
	return !os.SameFile(self, other), nil
}

// boundLike drops from the calling thread's bounding set every capability
// process pid's set lacks: nspawn bounds the whole pod, and nsenter and
// stage2, until stage2 applies the app's sets, must hold no more than that.
func boundLike(pid int) error {
	caps, err := capability.NewPid2(pid)
	if err == nil {
		err = caps.Load()
	}
	if err != nil {
		return fmt.Errorf("read bounding set of %d: %w", pid, err)
	}
	last, err := capability.LastCap()
	if err != nil {
		return fmt.Errorf("read last capability: %w", err)
	}
	for c := capability.Cap(0); c <= last; c++ {
		if caps.Get(capability.BOUNDING, c) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return fmt.Errorf("drop %s from bounding set: %w", c, err)
		}
	}
	return nil
}

// appPid finds the main process of app's unit: the child of the pod's
// init whose cgroup is the unit's.
func appPid(init int, app string) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", init, init))
	if err != nil {
		return 0, fmt.Errorf("find app %s: %w", app, err)
	}
	for _, f := range strings.Fields(string(b)) {
		cg, err := procCgroups(f)
		if err != nil {
			continue
		}
		for _, k := range []string{"name=systemd", ""} {
			if strings.HasSuffix(cg[k], "/"+podunit.UnitName(app)) {
				pid, err := strconv.Atoi(f)
				return podunit.AppProcess("/proc", pid), err
			}
		}
	}
	return 0, fmt.Errorf("find app %s: %w", app, ErrNoApp)
}

// joinCgroups moves the caller into every cgroup of process pid, so that a
// command entered into an app is limited and accounted as the app is.
func joinCgroups(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return fmt.Errorf("read cgroups: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		dir := filepath.Join(cgroupRoot, strings.TrimPrefix(f[1], "name="))
		if f[1] == "" {
			if _, err := os.Stat(filepath.Join(cgroupRoot, "unified")); err == nil {
				dir = filepath.Join(cgroupRoot, "unified")
			}
		}
		procs := filepath.Join(dir, f[2], "cgroup.procs")
		if err := os.WriteFile(procs, []byte("0"), 0); err != nil {
			errs = append(errs, fmt.Errorf("join cgroup %s: %w", procs, err))
		}
	}
	return errors.Join(errs...)
}
