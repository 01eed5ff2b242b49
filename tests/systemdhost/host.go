//go:build e2e

package systemdhost

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	// DefaultRoot is where `make testhost` caches the host's root tree;
	// $SKIFF_TESTHOST overrides it.
	DefaultRoot = "/var/tmp/skiff-testhost"
	// BuildTarget builds (or completes) the cached root.
	BuildTarget = "make testhost"
	// OSTree is where the pristine cached root is bind-mounted read-only
	// inside every host: a ready systemd OS tree for nested pods (with an
	// empty machine-id, so each pod boots with its own).
	OSTree = "/var/lib/testhost-os"

	bootTimeout     = 60 * time.Second
	shutdownTimeout = 30 * time.Second
)

// cleanEnv is the whole environment of commands run in the host, so nothing
// from the test process (GOFLAGS, NOTIFY_SOCKET, ...) leaks in.
var cleanEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root",
	"LANG=C.UTF-8",
	"SYSTEMD_PAGER=",
}

// Options says which host to boot. The zero value boots the default root
// as machine "testhost" with nothing bound in.
type Options struct {
	Root  string   // the cached root tree; default $SKIFF_TESTHOST or DefaultRoot
	Binds []string // host paths bind-mounted read-write at the same path inside
	Name  string   // machine name and hostname; default "testhost"
}

// Host is one booted systemd host. It lives until Shutdown, which Boot
// registers with t.Cleanup; its methods are safe for concurrent use.
type Host struct {
	Name   string
	Leader int // PID, in our namespace, of the host's systemd (its PID 1)

	t        testing.TB
	nspawn   *exec.Cmd
	console  *syncBuffer
	done     chan struct{} // closed when nspawn has exited
	waitErr  error         // nspawn's exit; read only after done
	shutdown sync.Once
	shutErr  error
}

// Boot starts a host from a copy-on-write overlay of opts.Root (the cache is
// never written), waits until systemd reports the system running, and
// registers its shutdown with t.Cleanup. It skips when not root and fails
// when the cached root has not been built.
func Boot(t testing.TB, opts Options) *Host {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("systemdhost: booting a systemd host needs root (mounts, nspawn); run `make test` or go test as root")
	}
	if opts.Root == "" {
		opts.Root = os.Getenv("SKIFF_TESTHOST")
	}
	if opts.Root == "" {
		opts.Root = DefaultRoot
	}
	if opts.Name == "" {
		opts.Name = "testhost"
	}
	if _, err := os.Stat(filepath.Join(opts.Root, ".complete")); err != nil {
		t.Fatalf("systemd test host root %s is not built (%v): run `%s TESTHOST_DIR=%[1]s`", opts.Root, err, BuildTarget)
	}
	for _, bin := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("systemdhost: %v: run `make testhost-deps`", err)
		}
	}

	// Our own overlay rather than nspawn's --overlay: nspawn mounts that
	// one over the -D path itself, so a bind of Root would show the
	// host's writes instead of the pristine tree.
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "root")
	for _, d := range []string{upper, work, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("systemdhost: %v", err)
		}
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", opts.Root, upper, work)
	if err := syscall.Mount("overlay", merged, "overlay", 0, data); err != nil {
		t.Fatalf("systemdhost: mount overlay on %s: %v", merged, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(merged, syscall.MNT_DETACH); err != nil {
			t.Errorf("systemdhost: unmount %s: %v", merged, err)
		}
	})

	args := []string{
		"-b", "-D", merged, "--register=no", "--keep-unit",
		// Not --console=pipe: that gives the host no /dev/console, so
		// the boot log a failing test shows would be empty.
		"--console=read-only",
		"-M", opts.Name,
		"--private-network", // parallel hosts cannot clash on ports; the build machine's network is not touched
		"--bind-ro=" + opts.Root + ":" + OSTree,
	}
	for _, b := range opts.Binds {
		args = append(args, "--bind="+b)
	}
	h := &Host{
		Name:    opts.Name,
		t:       t,
		nspawn:  exec.Command("systemd-nspawn", args...),
		console: &syncBuffer{},
		done:    make(chan struct{}),
	}
	h.nspawn.Stdout, h.nspawn.Stderr = h.console, h.console
	// If the test binary dies without running cleanups (a -timeout
	// panic), SIGTERM makes nspawn power the host off instead of leaking it.
	h.nspawn.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := h.nspawn.Start(); err != nil {
		t.Fatalf("systemdhost: start systemd-nspawn: %v", err)
	}
	go func() { h.waitErr = h.nspawn.Wait(); close(h.done) }()
	t.Cleanup(func() {
		if err := h.Shutdown(); err != nil {
			t.Errorf("systemdhost: %v", err)
		}
		if t.Failed() {
			t.Logf("systemdhost: console of %s:\n%s", h.Name, h.Console())
		}
	})

	if err := h.waitRunning(); err != nil {
		t.Fatalf("systemdhost: boot %s: %v\nconsole:\n%s", h.Name, err, h.Console())
	}
	t.Logf("systemdhost: %s booted in %v (systemd is pid %d)", h.Name, time.Since(start).Round(time.Millisecond), h.Leader)
	return h
}

// waitRunning finds the container's systemd and waits until
// `systemctl is-system-running --wait` says running (or degraded, listing
// the failed units).
func (h *Host) waitRunning() error {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	var last string
	for {
		if h.Leader == 0 {
			h.Leader = h.findLeader()
		}
		if h.Leader != 0 {
			out, errOut, err := h.Run(ctx, "systemctl", "is-system-running", "--wait")
			state := strings.TrimSpace(out)
			switch {
			case state == "running":
				return nil
			case state == "degraded":
				failed, _, _ := h.Run(ctx, "systemctl", "--failed", "--no-legend")
				h.t.Logf("systemdhost: %s is degraded; failed units:\n%s", h.Name, failed)
				return nil
			case err != nil:
				last = fmt.Sprintf("systemctl is-system-running: %q %q: %v", state, errOut, err)
			}
		}
		select {
		case <-h.done:
			return fmt.Errorf("systemd-nspawn exited: %v (last: %s)", h.waitErr, last)
		case <-ctx.Done():
			return fmt.Errorf("not running after %v (last: %s)", bootTimeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// findLeader returns the PID of the container's init once it is PID 1 of
// its own namespace and has exec'd systemd, or 0.
func (h *Host) findLeader() int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", h.nspawn.Process.Pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(b)) {
			pid, _ := strconv.Atoi(field)
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
			for _, line := range strings.Split(string(status), "\n") {
				if ns, ok := strings.CutPrefix(line, "NSpid:"); ok {
					ids := strings.Fields(ns)
					if len(ids) > 1 && ids[len(ids)-1] == "1" && strings.TrimSpace(string(comm)) == "systemd" {
						return pid
					}
				}
			}
		}
	}
	return 0
}

// Run runs args inside the host (all its namespaces, its root and cwd) with
// a clean environment, and returns what it printed.
func (h *Host) Run(ctx context.Context, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(h.Leader), "-a", "--"}, args...)...)
	cmd.Env = cleanEnv
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), errOut.String(), fmt.Errorf("run %q in %s: %w: %s", args, h.Name, err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), errOut.String(), nil
}

// Console returns what the host's console and nspawn printed so far.
func (h *Host) Console() string { return h.console.String() }

// Shutdown powers the host off and waits for nspawn to exit; after
// shutdownTimeout it kills the host and reports that. Later calls return
// the first result.
func (h *Host) Shutdown() error {
	h.shutdown.Do(func() {
		select {
		case <-h.done:
			h.shutErr = fmt.Errorf("shut down %s: systemd-nspawn had already exited: %v", h.Name, h.waitErr)
			return
		default:
		}
		start := time.Now()
		if h.Leader == 0 {
			h.Leader = h.findLeader()
		}
		if h.Leader != 0 {
			// The connection drops as systemd goes down, so the error
			// of poweroff itself says nothing; nspawn's exit does.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			h.Run(ctx, "systemctl", "poweroff", "--no-block")
			cancel()
		} else {
			h.nspawn.Process.Signal(syscall.SIGTERM) // nspawn halts a container that has not booted
		}
		select {
		case <-h.done:
			if h.waitErr != nil {
				h.shutErr = fmt.Errorf("shut down %s: systemd-nspawn: %w", h.Name, h.waitErr)
			}
			h.t.Logf("systemdhost: %s shut down in %v", h.Name, time.Since(start).Round(time.Millisecond))
		case <-time.After(shutdownTimeout):
			if h.Leader > 0 {
				// Killing a PID namespace's init kills everything in it.
				syscall.Kill(h.Leader, syscall.SIGKILL)
			}
			h.nspawn.Process.Kill()
			<-h.done
			h.shutErr = fmt.Errorf("shut down %s: %w after %v, killed it", h.Name, ErrShutdownTimeout, shutdownTimeout)
		}
	})
	return h.shutErr
}

// syncBuffer collects nspawn's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
