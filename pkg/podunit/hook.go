package podunit

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// SigPoweroff asks systemd (PID 1) for a clean poweroff: SIGRTMIN+4, with
// glibc's SIGRTMIN of 34 that systemd uses.
const SigPoweroff = syscall.Signal(34 + 4)

// Poweroff asks the pod's systemd (PID 1 where the hook runs) for a clean
// poweroff.
func Poweroff() error { return unix.Kill(1, SigPoweroff) }

// Hook runs one of the hooks the pod's units call inside the container;
// root is "/" there (tests pass a directory). end is what app-exited does
// once every app has ended (see AppExited); nil means Poweroff.
func Hook(root string, args []string, end func() error) error {
	if end == nil {
		end = Poweroff
	}
	switch {
	case len(args) == 3 && args[0] == "app-exited":
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return fmt.Errorf("hook app-exited: %w: app count %q", ErrUsage, args[2])
		}
		return AppExited(root, args[1], n, os.Getenv, Poweroff, end)
	case len(args) == 1 && args[0] == "app-started":
		pid, err := strconv.Atoi(os.Getenv("MAINPID"))
		if err != nil {
			return fmt.Errorf("hook app-started: %w: MAINPID=%q", ErrUsage, os.Getenv("MAINPID"))
		}
		// A pod stopped while the app starts sends SIGTERM to the unit's
		// processes: the app's death by it is a clean stop, this hook's
		// would count as the unit's failure. It ends with the app anyway.
		signal.Ignore(syscall.SIGTERM)
		for Launching(root, pid) {
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	case len(args) == 1 && args[0] == "ready":
		return touch(filepath.Join(root, pod.InPodReadyFile))
	case len(args) == 1 && args[0] == "journal":
		return touch(filepath.Join(root, JournalFlushed))
	case len(args) == 1 && args[0] == "journal-sync":
		return SyncJournal(root, JournalDrain)
	}
	return fmt.Errorf("hook %q: %w", args, ErrUsage)
}

// journalVarlink is journald's varlink socket.
const journalVarlink = "/run/systemd/journal/io.systemd.journal"

// JournalDrain is how long the poweroff waits for journald to drain
// (SyncJournal); systemd-poweroff.service's TimeoutStartSec= is longer.
const JournalDrain = 4 * time.Minute

// QuickDrain is how long a hook that ends the pod itself waits for
// journald (an app unit's ExecStopPost= has TimeoutStopSec=, 10 s): a
// journal that is not synced by then is left to the poweroff.
const QuickDrain = 5 * time.Second

// SyncJournal waits, as journalctl --sync does, until journald has
// processed everything logged so far, console forwarding included, or
// until timeout has passed. The hook that ends the pod, or the poweroff,
// runs it once the apps have stopped: what journald still had queued would
// be lost, and with it the end of what run prints (a VM's console under
// emulation lags far behind a loud app: 50 000 lines took over a minute to
// drain under TCG, so the poweroff waits up to JournalDrain, and
// systemd-poweroff.service powers off when it fails too). An app can end
// before journald has started (socket activation holds its lines until
// then): the wait includes journald's start. root is "/" in the pod.
func SyncJournal(root string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var conn net.Conn
	var err error
	for ; ; time.Sleep(2 * time.Millisecond) {
		conn, err = net.Dial("unix", filepath.Join(root, journalVarlink))
		if err == nil || !(errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED)) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte(`{"method":"io.systemd.Journal.Synchronize","parameters":{}}` + "\x00")); err != nil {
		return err
	}
	_, err = bufio.NewReader(conn).ReadBytes(0)
	return err
}

// Launching reports whether process pid still runs stage2 (found under
// root), which an app's main process runs before it execs the app: until
// then the app is not started, and entering it would enter the stage1's
// root. A process that is gone is not launching.
func Launching(root string, pid int) bool {
	pid = AppProcess("/proc", pid)
	exe, err := os.Stat(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return false
	}
	fi, err := os.Stat(filepath.Join(root, Stage2Path))
	return err == nil && os.SameFile(fi, exe)
}

// AppExited records app's exit status from the environment systemd gives
// ExecStopPost= (EXIT_CODE, EXIT_STATUS, SERVICE_RESULT), remembers the
// first app that failed, and ends the pod: with end once every one of the
// napps apps has ended (their statuses are written by then: a stage1 may
// end the pod at once), with poweroff when an app failed while others
// still run (systemd stops them cleanly, and their hooks record them).
// napps 0 is an app of an app sandbox (SandboxUnit): its status is
// recorded and nothing else, the sandbox lives until it is stopped
// (docs/app-sandbox.md).
func AppExited(root, app string, napps int, getenv func(string) string, poweroff, end func() error) error {
	st := appStatus(getenv("EXIT_CODE"), getenv("EXIT_STATUS"))
	_, err := os.Stat(filepath.Join(root, StoppingFile))
	stopping := err == nil
	_, err = os.Stat(filepath.Join(root, FailedFile))
	siblingFailed := err == nil
	// An app the pod stopped, because a sibling failed or a stop was
	// asked for, ended cleanly: rkt records 0 for it, not 128+SIGTERM.
	// systemd counts death by SIGTERM as success; a clean stop can also
	// catch an app whose unit is still starting, and SIGTERM then ends it
	// before systemd counts it as running, with a result that is not
	// "success".
	killed := getenv("EXIT_CODE") == "killed"
	cleanStop := (stopping || siblingFailed) && killed &&
		(getenv("SERVICE_RESULT") == "success" || getenv("EXIT_STATUS") == "TERM")
	if cleanStop {
		st = 0
	}
	dir := filepath.Join(root, pod.InPodStatusDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("record exit of %s: %w", app, err)
	}
	tmp := filepath.Join(dir, "."+app)
	if err := os.WriteFile(tmp, []byte(strconv.Itoa(st)), 0o644); err != nil {
		return fmt.Errorf("record exit of %s: %w", app, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, app)); err != nil {
		return fmt.Errorf("record exit of %s: %w", app, err)
	}
	if OOMKilled(root, app, st, getenv) {
		if err := touchIn(filepath.Join(root, pod.InPodOOMDir), app); err != nil {
			return fmt.Errorf("record exit of %s: %w", app, err)
		}
	}
	// systemd counts death by SIGTERM (how a stopping pod ends its apps) as
	// success; anything else that is not success is a failure.
	failed := getenv("SERVICE_RESULT") != "success" && !cleanStop
	if napps == 0 {
		return nil
	}
	if failed {
		f, err := os.OpenFile(filepath.Join(root, FailedFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err == nil {
			_, err = f.WriteString(app)
			err = errors.Join(err, f.Close())
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("record failure of %s: %w", app, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("record exit of %s: %w", app, err)
	}
	ended := 0
	for _, e := range ents {
		if e.Name()[0] != '.' {
			ended++
		}
	}
	switch {
	case ended >= napps:
		err = end()
	case failed:
		err = poweroff()
	}
	if err != nil {
		return fmt.Errorf("power off pod: %w", err)
	}
	return nil
}

// OOMKilled reports whether the kernel's OOM killer ended app, whose exit
// status is st: systemd says so (SERVICE_RESULT=oom-kill, where the pod's
// systemd owns the memory controller: cgroup v2, a VM), or the app died of
// SIGKILL (137) and its v1 memory cgroup, which stage1-ns links at
// CgroupDir/<app>/memory, counts an OOM kill.
func OOMKilled(root, app string, st int, getenv func(string) string) bool {
	if getenv("SERVICE_RESULT") == "oom-kill" {
		return true
	}
	if st != 128+int(unix.SIGKILL) {
		return false
	}
	b, err := os.ReadFile(filepath.Join(root, CgroupDir, app, "memory", "memory.oom_control"))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(l, "oom_kill "); ok {
			k, err := strconv.Atoi(strings.TrimSpace(n))
			return err == nil && k > 0
		}
	}
	return false
}

// touchIn creates the empty file name in dir, and dir if need be.
func touchIn(dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return touch(filepath.Join(dir, name))
}

// appStatus turns systemd's EXIT_CODE/EXIT_STATUS into a shell-style
// status: the exit code, or 128+signal for a killed process. A process
// that never ran (no EXIT_CODE) counts as a stage1 failure.
func appStatus(code, status string) int {
	switch code {
	case "exited":
		if n, err := strconv.Atoi(status); err == nil {
			return n
		}
	case "killed", "dumped":
		if s := unix.SignalNum("SIG" + status); s != 0 {
			return 128 + int(s)
		}
		if n, err := strconv.Atoi(status); err == nil {
			return 128 + n
		}
	}
	return pod.ExitFailure
}

func touch(path string) error {
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	return nil
}

// AppProcess returns the process that is the app of a unit whose main
// process is pid, under the proc mount proc: pid itself, or, for an app
// with a PID namespace of its own (pod.AnnotationPIDNamespace), the child
// of pid in another PID namespace that stage2 started there.
func AppProcess(proc string, pid int) int {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "task", strconv.Itoa(pid), "children"))
	if err != nil {
		return pid
	}
	own, err := os.Readlink(filepath.Join(proc, strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return pid
	}
	for _, f := range strings.Fields(string(b)) {
		if ns, err := os.Readlink(filepath.Join(proc, f, "ns", "pid")); err == nil && ns != own {
			if c, err := strconv.Atoi(f); err == nil {
				return c
			}
		}
	}
	return pid
}
