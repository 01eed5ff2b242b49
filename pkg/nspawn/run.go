package nspawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
)

// BundleFunc writes the bundle stage2 runs app ra from into dir: its OCI
// runtime spec and the files the spec names (stage1-ns uses pkg/appspec).
// appRoot is the app's rootfs.
type BundleFunc func(dir string, pm *schema.PodManifest, ra *schema.RuntimeApp, img *schema.ImageManifest, appRoot *os.Root) error

// RunOptions are the run entrypoint's flags and what it is wired to.
type RunOptions struct {
	UUID        string
	Net         string // host, none or default (= host)
	Hostname    string
	Interactive bool
	Debug       bool
	Bundle      BundleFunc
	Nspawn      string // the systemd-nspawn binary; "" finds it in PATH
}

// Run runs the pod whose directory is the working directory until it
// ends, and returns the status the run entrypoint exits with: the first
// failed app's, 0 when all succeeded, pod.ExitStage1Failure on its own
// failure.
func Run(log *slog.Logger, o RunOptions) int {
	st, err := run(log, o)
	if err != nil {
		log.Error("run pod", "err", err)
		return pod.ExitStage1Failure
	}
	return st
}

func run(log *slog.Logger, o RunOptions) (int, error) {
	if err := keepLock(); err != nil {
		return 0, err
	}
	b, err := os.ReadFile(pod.ManifestFile)
	if err != nil {
		return 0, fmt.Errorf("read pod manifest: %w", err)
	}
	pm, err := pod.ParseManifest(b)
	if err != nil {
		return 0, err
	}
	apps, err := AppsOf(pm)
	if err != nil {
		return 0, err
	}
	if o.Interactive && len(apps) != 1 {
		return 0, fmt.Errorf("run: %w: --interactive needs exactly one app, the pod has %d", ErrUsage, len(apps))
	}
	if err := writeBundles(pm, o.Bundle); err != nil {
		return 0, err
	}
	if err := prepareRoot(o.UUID, apps, o.Interactive); err != nil {
		return 0, err
	}
	volBinds, err := volumes(pm)
	if err != nil {
		return 0, err
	}
	cgBinds, leave, err := setupCgroups(o.UUID, apps)
	defer func() {
		leave()
		if err := removeCgroups(o.UUID); err != nil {
			log.Warn("clean up", "err", err)
		}
		removePropagate(o.UUID)
	}()
	if err != nil {
		return 0, err
	}
	args, err := nspawnArgs(o, append(volBinds, cgBinds...))
	if err != nil {
		return 0, err
	}
	log.Debug("start pod", "args", args)
	nerr := nspawn(log, o, args)
	st, err := podExit(pod.Stage1Rootfs, apps)
	if err != nil {
		return 0, errors.Join(err, nerr)
	}
	return st, nil
}

// keepLock checks the inherited lock fd and keeps it from leaking into the
// pod: a directory fd on the host is a way out of any root.
func keepLock() error {
	fd, err := strconv.Atoi(os.Getenv(pod.EnvLockFD))
	if err != nil {
		return fmt.Errorf("run: %w: %s=%q", ErrUsage, pod.EnvLockFD, os.Getenv(pod.EnvLockFD))
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
		return fmt.Errorf("run: lock fd %d: %w", fd, err)
	}
	unix.CloseOnExec(fd)
	return nil
}

// writeBundles writes every app's bundle beside its rootfs.
func writeBundles(pm *schema.PodManifest, write BundleFunc) error {
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		name := ra.Name.String()
		b, err := os.ReadFile(pod.AppManifest(name))
		if err != nil {
			return fmt.Errorf("read image manifest of %s: %w", name, err)
		}
		var img schema.ImageManifest
		if err := json.Unmarshal(b, &img); err != nil {
			return fmt.Errorf("parse image manifest of %s: %w", name, err)
		}
		root, err := os.OpenRoot(pod.AppRootfs(name))
		if err != nil {
			return fmt.Errorf("open rootfs of %s: %w", name, err)
		}
		err = write(pod.AppDir(name), pm, ra, &img, root)
		root.Close()
		if err != nil {
			return fmt.Errorf("write bundle of %s: %w", name, err)
		}
	}
	return nil
}

// prepareRoot writes the machine-id and the units into the stage1 rootfs
// and clears what a previous boot left.
func prepareRoot(uuid string, apps []App, interactive bool) error {
	root, err := os.OpenRoot(pod.Stage1Rootfs)
	if err != nil {
		return fmt.Errorf("open stage1 rootfs: %w", err)
	}
	defer root.Close()
	rel := func(p string) string { return strings.TrimPrefix(p, "/") }
	files := map[string]string{"etc/machine-id": pod.MachineID(uuid) + "\n"}
	for name, u := range Units(apps, interactive) {
		files[rel(unitDir)+"/"+name] = u
	}
	var errs []error
	for _, p := range []string{rel(failedFile), rel(readyFile)} {
		errs = append(errs, ignoreNotExist(root.Remove(p)))
	}
	for _, d := range []string{rel(unitDir), rel(statusDir), "var/log/journal", rel(volumesDir)} {
		errs = append(errs, root.MkdirAll(d, 0o755))
	}
	for p, content := range files {
		errs = append(errs, root.WriteFile(p, []byte(content), 0o644))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("prepare stage1 rootfs: %w", err)
	}
	return nil
}

// volumes makes the pod's empty volumes as directories of the stage1
// rootfs and returns the nspawn binds of its host volumes; stage2 mounts
// both from /skiff/volumes/<name> into the apps.
func volumes(pm *schema.PodManifest) ([]string, error) {
	var binds []string
	for _, v := range pm.Volumes {
		dst := volumesDir + "/" + v.Name.String()
		switch v.Kind {
		case "host":
			if !filepath.IsAbs(v.Source) {
				return nil, fmt.Errorf("volume %s: source %q is not absolute", v.Name, v.Source)
			}
			flag := "--bind="
			if v.ReadOnly != nil && *v.ReadOnly {
				flag = "--bind-ro="
			}
			opt := ""
			if v.Recursive != nil && !*v.Recursive {
				opt = ":norbind"
			}
			binds = append(binds, flag+escapeBind(v.Source)+":"+dst+opt)
		case "empty":
			mode, uid, gid := os.FileMode(0o755), 0, 0
			if v.Mode != nil {
				m, err := strconv.ParseUint(*v.Mode, 8, 32)
				if err != nil {
					return nil, fmt.Errorf("volume %s: mode %q: %w", v.Name, *v.Mode, err)
				}
				mode = os.FileMode(m)
			}
			if v.UID != nil {
				uid = *v.UID
			}
			if v.GID != nil {
				gid = *v.GID
			}
			dir := filepath.Join(pod.Stage1Rootfs, dst)
			err := os.Mkdir(dir, mode)
			if err == nil || errors.Is(err, os.ErrExist) {
				err = errors.Join(os.Lchown(dir, uid, gid), os.Chmod(dir, mode))
			}
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Name, err)
			}
		default:
			return nil, fmt.Errorf("volume %s: unknown kind %q", v.Name, v.Kind)
		}
	}
	return binds, nil
}

func nspawnArgs(o RunOptions, binds []string) ([]string, error) {
	args := []string{
		"--boot", "--directory=" + pod.Stage1Rootfs,
		"--machine=" + pod.MachineName(o.UUID), "--uuid=" + pod.MachineID(o.UUID),
		"--link-journal=try-guest", "--settings=no", "--timezone=off",
		// stage2 binds the stage1's resolv.conf into the apps.
		"--resolv-conf=copy-host",
		// SIGTERM to nspawn (from run or anyone) becomes a clean poweroff.
		"--kill-signal=SIGRTMIN+4",
	}
	switch {
	case !machined():
		args = append(args, "--register=no", "--keep-unit")
	case inService():
		args = append(args, "--register=yes", "--keep-unit")
	default:
		args = append(args, "--register=yes")
	}
	if o.Interactive {
		args = append(args, "--console=interactive")
	} else {
		args = append(args, "--console=passive")
	}
	switch o.Net {
	case "", "host", "default":
	case "none":
		args = append(args, "--private-network")
	default:
		return nil, fmt.Errorf("run: %w: --net=%q", ErrUsage, o.Net)
	}
	if o.Hostname != "" {
		args = append(args, "--hostname="+o.Hostname)
	}
	args = append(args, binds...)
	// Arguments after the directory go to the pod's systemd. At the default
	// level it would print harmless errors about this host's cgroup layout
	// on the console, among the apps' output.
	if o.Debug {
		args = append(args, "systemd.log_level=debug", "systemd.show_status=true")
	} else {
		args = append([]string{"--quiet"}, args...)
		args = append(args, "systemd.log_level=crit", "systemd.show_status=false")
	}
	return args, nil
}

// machined reports whether the host runs systemd with a system bus, so
// nspawn can register the pod with systemd-machined.
func machined() bool {
	_, err1 := os.Stat("/run/systemd/system")
	_, err2 := os.Stat("/run/dbus/system_bus_socket")
	return err1 == nil && err2 == nil
}

// inService reports whether run is a service's process (under
// systemd-run): then the pod stays in that unit, as its main process.
func inService() bool {
	cg, err := ownCgroups()
	return err == nil && (strings.HasSuffix(cg[""], ".service") || strings.HasSuffix(cg["name=systemd"], ".service"))
}

// nspawn runs systemd-nspawn as run's child, records the pod's init pid
// and turns SIGTERM/SIGINT into a clean poweroff of the pod.
func nspawn(log *slog.Logger, o RunOptions, args []string) error {
	bin := o.Nspawn
	if bin == "" {
		bin = "systemd-nspawn"
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if o.Interactive {
		cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	} else {
		// The console is a pty whose line discipline turns \n into \r\n.
		cmd.Stdout = &crlf{w: os.Stdout}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pidFound := false
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("systemd-nspawn: %w", err)
			}
			return nil
		case s := <-sigs:
			log.Debug("stop pod", "signal", s)
			cmd.Process.Signal(syscall.SIGTERM)
		case <-tick.C:
			if pidFound {
				continue
			}
			if pid := initOf(cmd.Process.Pid); pid > 0 {
				pidFound = true
				tick.Stop()
				if err := writeFileAtomic(pod.PidFile, strconv.Itoa(pid)); err != nil {
					log.Error("record pod pid", "err", err)
				}
			}
		}
	}
}

// initOf returns the child of nspawn that is in another pid namespace: the
// pod's init (nspawn's first child is a short-lived helper in ours).
func initOf(nspawnPid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", nspawnPid, nspawnPid))
	if err != nil {
		return 0
	}
	own, _ := os.Readlink("/proc/self/ns/pid")
	for _, f := range strings.Fields(string(b)) {
		ns, err := os.Readlink("/proc/" + f + "/ns/pid")
		if err == nil && ns != own {
			n, _ := strconv.Atoi(f)
			return n
		}
	}
	return 0
}

// podExit reads what the hooks recorded in the stage1 rootfs.
func podExit(rootfs string, apps []App) (int, error) {
	if b, err := os.ReadFile(filepath.Join(rootfs, failedFile)); err == nil {
		name := string(b)
		n, err := readStatus(rootfs, name)
		if err != nil {
			return 0, err
		}
		if n == 0 { // failed without a status of its own (e.g. a pre-start handler)
			n = 1
		}
		return n, nil
	}
	for _, a := range apps {
		if _, err := readStatus(rootfs, a.Name); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

func readStatus(rootfs, app string) (int, error) {
	b, err := os.ReadFile(filepath.Join(rootfs, statusDir, app))
	if err != nil {
		return 0, fmt.Errorf("app %s has no exit status: %w", app, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("exit status of app %s: %w", app, err)
	}
	return n, nil
}

// removePropagate removes the mount propagation directory nspawn leaves
// behind on hosts whose /run is not a tmpfs.
func removePropagate(uuid string) {
	os.RemoveAll("/run/systemd/nspawn/propagate/" + pod.MachineName(uuid))
}

func writeFileAtomic(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// crlf turns the console's \r\n line ends back into \n.
type crlf struct {
	w  io.Writer
	cr int // pending \r bytes
}

func (c *crlf) Write(p []byte) (int, error) {
	out := make([]byte, 0, len(p)+c.cr)
	for _, b := range p {
		switch {
		case b == '\r':
			c.cr++
			continue
		case b != '\n':
			for ; c.cr > 0; c.cr-- {
				out = append(out, '\r')
			}
		}
		c.cr = 0
		out = append(out, b)
	}
	_, err := c.w.Write(out)
	return len(p), err
}
