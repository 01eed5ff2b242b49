package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
)

var _ stage1kit.AppIsolator = Isolator{}

// App does app entrypoint ep for app a.App of the running app sandbox
// (docs/app-sandbox.md): the files through podunit, the pod's systemd
// through its own systemctl, run in the pod.
func (Isolator) App(_ *slog.Logger, ep string, a pod.AppArgs) error {
	init, err := podInit()
	if err != nil {
		return err
	}
	unit := podunit.UnitName(a.App)
	switch ep {
	case pod.EntrypointAppAdd:
		o, err := podunit.ReadAppOptions()
		if err != nil {
			return fmt.Errorf("add app %s: %w", a.App, err)
		}
		if o.Hostname, err = hostname(init); err != nil {
			return err
		}
		bundle, err := podunit.AppBundle(o)
		if err != nil {
			return err
		}
		app, err := podunit.AddApp(a.App, bundle)
		if err != nil {
			return err
		}
		if cgroupV1() {
			// A pod booted without cgroups of its own can take added
			// apps, but not their limits.
			err := withRootfs(func(root *os.Root) error { return addAppCgroups(root, a.UUID, app) })
			if err != nil && (app.Memory > 0 || app.CPU > 0 || !errors.Is(err, ErrNoPodCgroups)) {
				withRootfs(func(root *os.Root) error { return removeAppCgroups(root, a.UUID, a.App) })
				podunit.RemoveApp(a.App)
				return err
			}
		}
		if err := withRootfs(func(root *os.Root) error { return addAppDevices(root, a.UUID, app) }); err != nil {
			withRootfs(func(root *os.Root) error { return removeAppCgroups(root, a.UUID, a.App) })
			podunit.RemoveApp(a.App)
			return err
		}
		// No daemon-reload (tens of ms, more with each app): systemd
		// loads a unit it does not know from its file at the start.
		return nil
	case pod.EntrypointAppStart:
		if err := podunit.ClearStatus(a.App); err != nil {
			return err
		}
		err := systemctl(init, "start", unit)
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == systemctlNoUnit {
			// systemd's cache of the unit directory can predate the file
			// (written in the same clock tick as its last look): reload.
			if err := systemctl(init, "daemon-reload"); err != nil {
				return err
			}
			err = systemctl(init, "start", unit)
		}
		return err
	case pod.EntrypointAppStop:
		return systemctl(init, "stop", unit)
	case pod.EntrypointAppRm:
		if systemctl(init, "is-active", "--quiet", unit) == nil {
			return fmt.Errorf("remove app %s: %w: it is running, stop it first", a.App, ErrUsage)
		}
		if err := podunit.RemoveApp(a.App); err != nil {
			return err
		}
		if err := withRootfs(func(root *os.Root) error { return removeAppCgroups(root, a.UUID, a.App) }); err != nil {
			return err
		}
		return systemctl(init, "daemon-reload")
	}
	return fmt.Errorf("%s: %w: unknown app entrypoint", ep, ErrUsage)
}

// withRootfs calls f with the pod's stage1 rootfs (cwd is the pod dir).
func withRootfs(f func(*os.Root) error) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return err
	}
	defer root.Close()
	return f(root)
}

// systemctlNoUnit is systemctl's exit status for a unit it cannot find
// (LSB's "not installed").
const systemctlNoUnit = 5

// systemctl runs the pod's systemctl with args in the pod's mount
// namespace and root, where it talks to the pod's systemd.
func systemctl(init int, args ...string) error {
	argv := append([]string{"--target=" + strconv.Itoa(init), "--mount", "--pid", "--root", "--wd", "--",
		"/usr/bin/systemctl", "--no-ask-password"}, args...)
	cmd := exec.Command("nsenter", argv...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = []string{"PATH=/usr/bin:/bin", "SYSTEMD_LOG_LEVEL=err"}
	if err := cmd.Run(); err != nil {
		// Its first line says what failed; the rest points at tools the
		// host may not have.
		first, _, _ := strings.Cut(strings.TrimSpace(out.String()), "\n")
		return fmt.Errorf("systemctl %s: %w: %s", strings.Join(args, " "), err, first)
	}
	return nil
}

// hostname reads the UTS name of process pid (the pod's hostname), from a
// thread that joins its UTS namespace and is then discarded.
func hostname(pid int) (string, error) {
	type result struct {
		name string
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		f, err := os.Open(fmt.Sprintf("/proc/%d/ns/uts", pid))
		if err != nil {
			ch <- result{err: fmt.Errorf("pod hostname: %w", err)}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWUTS); err != nil {
			ch <- result{err: fmt.Errorf("pod hostname: %w", err)}
			return
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			ch <- result{err: fmt.Errorf("pod hostname: %w", err)}
			return
		}
		ch <- result{name: unix.ByteSliceToString(u.Nodename[:])}
	}()
	r := <-ch
	return r.name, r.err
}

// shareApps makes the pod's apps directory a shared mount of its own
// before nspawn starts, so that the app rootfs stage0 mounts under it on
// the host while the pod runs (skiff app add) reach the pod too, and their
// unmounts (skiff app rm) as well: nspawn makes the pod's copy a slave.
func shareApps() error {
	if err := os.MkdirAll(pod.AppsDir, 0o755); err != nil {
		return fmt.Errorf("share apps dir: %w", err)
	}
	if err := unix.Mount(pod.AppsDir, pod.AppsDir, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("share apps dir: %w", err)
	}
	if err := unix.Mount("", pod.AppsDir, "", unix.MS_SHARED, ""); err != nil {
		return fmt.Errorf("share apps dir: %w", err)
	}
	return nil
}
