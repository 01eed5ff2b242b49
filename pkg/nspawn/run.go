package nspawn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// RunOptions are the run entrypoint's flags and what it is wired to.
type RunOptions struct {
	pod.RunArgs
	Bundle podunit.BundleFunc
	Nspawn string // the systemd-nspawn binary; "" finds it in PATH
}

// Run runs the pod whose directory is the working directory until it
// ends, and returns the status the run entrypoint exits with: the first
// failed app's, 0 when all succeeded, pod.ExitFailure on its own
// failure.
func Run(log *slog.Logger, o RunOptions) int {
	st, err := run(log, o)
	if err != nil {
		log.Error("run pod", "err", err)
		return pod.ExitFailure
	}
	return st
}

func run(log *slog.Logger, o RunOptions) (int, error) {
	if err := podunit.KeepLock(); err != nil {
		return 0, err
	}
	pm, apps, pass, err := podunit.Prepare(log, o.UUID, o.Interactive, o.Bundle, nil)
	if err != nil {
		return 0, err
	}
	if o.Interactive && podunit.PipedStdin() {
		// No console: the app reads the pipe through a FIFO (podunit.FeedStdin).
		o.Interactive = false
		if err := podunit.FeedStdin(pod.Stage1Rootfs, os.Stdin); err != nil {
			return 0, err
		}
	}
	volBinds, err := volumes(pm)
	if err != nil {
		return 0, err
	}
	// Only limits need the v1 cgroups, and only they fail where the v1
	// hierarchies are read-only (inside a container, as on a systemd test host).
	var cgBinds []string
	leave := func() {}
	if limited(apps) {
		cgBinds, leave, err = setupCgroups(o.UUID, apps)
	}
	leavePids := func() {}
	if err == nil {
		var limit int64
		if limit, err = podunit.PidsLimit(pm); err == nil {
			leavePids, err = setupPids(log, o.UUID, limit)
		}
	}
	defer func() {
		leave()
		leavePids()
		if err := removeCgroups(o.UUID); err != nil {
			log.Warn("clean up", "err", err)
		}
		removePropagate(o.UUID)
	}()
	if err != nil {
		return 0, err
	}
	opts := append(volBinds, cgBinds...)
	if caps := podunit.RetainedCaps(apps); len(caps) > 0 {
		// nspawn's default set lacks some (CAP_NET_ADMIN without a private
		// network, CAP_SYS_TIME, ...); stage2 cannot give more than init has.
		opts = append(opts, "--capability="+strings.Join(caps, ","))
	}
	args, err := nspawnArgs(o, opts)
	if err != nil {
		return 0, err
	}
	if !podunit.Machined() {
		log.Debug("not registering the pod with systemd-machined: the host's PID 1 is not systemd")
	}
	log.Debug("start pod", "args", args)
	nerr := nspawn(log, o, args, pass)
	st, err := podunit.PodExit(pod.Stage1Rootfs, apps)
	if err != nil {
		return 0, errors.Join(err, nerr)
	}
	return st, nil
}

func limited(apps []podunit.App) bool {
	for _, a := range apps {
		if a.Memory > 0 || a.CPU > 0 {
			return true
		}
	}
	return false
}

// volumes makes the pod's empty volumes as directories of the stage1
// rootfs and returns the nspawn binds of its host volumes; stage2 mounts
// both from /skiff/volumes/<name> into the apps.
func volumes(pm *schema.PodManifest) ([]string, error) {
	var binds []string
	for _, v := range pm.Volumes {
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
			binds = append(binds, flag+escapeBind(v.Source)+":"+podunit.VolumesDir+"/"+v.Name.String()+opt)
		case "empty":
			if err := podunit.EmptyVolume(v); err != nil {
				return nil, err
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
	case !podunit.Machined():
		args = append(args, "--register=no", "--keep-unit")
	case podunit.InService():
		args = append(args, "--register=yes", "--keep-unit")
	default:
		args = append(args, "--register=yes")
	}
	if o.Interactive {
		args = append(args, "--console=interactive")
	} else {
		args = append(args, "--console=read-only")
	}
	switch {
	case o.NetNS != "":
		// stage0 attached the namespace to its networks (docs/networking.md)
		// and wrote the pod's resolv.conf beside it.
		args = append(args, "--network-namespace-path="+o.NetNS)
		if _, err := os.Lstat(pod.NetResolvConf); err == nil {
			wd, err := os.Getwd()
			if err != nil {
				return nil, fmt.Errorf("run: %w", err)
			}
			args = append(args, "--resolv-conf=off", "--bind-ro="+escapeBind(filepath.Join(wd, pod.NetResolvConf))+":/etc/resolv.conf")
		}
	case o.Net == "" || o.Net == "host" || o.Net == "default":
	case o.Net == "none":
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

// nspawn runs systemd-nspawn as run's child, records the pod's init pid,
// turns SIGTERM/SIGINT into a clean poweroff of the pod, hands the pod the
// sockets in pass, and tells the service manager when the pod is ready.
func nspawn(log *slog.Logger, o RunOptions, args []string, pass []*os.File) error {
	bin := o.Nspawn
	if bin == "" {
		bin = "systemd-nspawn"
	}
	cmd := exec.Command(bin, args...)
	// The service manager's variables are for run, the unit's main process:
	// nspawn's own READY=1 would come too early and from the wrong pid.
	notify := os.Getenv("NOTIFY_SOCKET") != ""
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return k == "NOTIFY_SOCKET" || k == "LISTEN_FDS" || k == "LISTEN_PID" || k == "LISTEN_FDNAMES"
	})
	if len(pass) > 0 {
		// nspawn hands fds 3.. to the pod's systemd when LISTEN_PID names
		// nspawn itself, a pid known only after the fork: a shell sets it
		// to its own and execs nspawn.
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(pass)))
		cmd.ExtraFiles = pass
		cmd.Path, cmd.Err = exec.LookPath("sh")
		cmd.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin}, args...)
	}
	stderr := &dropLine{w: os.Stderr, line: fmt.Sprintf(propagateNoise, pod.MachineName(o.UUID))}
	defer stderr.Flush()
	cmd.Stderr = stderr
	if o.Interactive {
		cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	} else {
		// The console is a pty whose line discipline turns \n into \r\n.
		cmd.Stdout = podunit.CRLF(os.Stdout)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start systemd-nspawn: %w", err)
	}
	for _, f := range pass {
		f.Close()
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	pid, ready := 0, !notify
	stops := 0 // signals received; the first is held until the pod's systemd can act on it
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
			if stops++; stops == 1 {
				if err := podunit.Stopping(pod.Stage1Rootfs); err != nil {
					log.Warn("stop pod", "err", err)
				}
				if notify {
					daemon.SdNotify(false, daemon.SdNotifyStopping)
				}
			}
			// nspawn turns SIGTERM into SIGRTMIN+4 to the pod's init, a
			// second one into killing the pod.
			if stops > 1 || catches(pid, podunit.SigPoweroff) {
				cmd.Process.Signal(syscall.SIGTERM)
				stops++
			} else {
				tick.Reset(time.Millisecond)
			}
		case <-tick.C:
			if pid == 0 {
				if pid = initOf(cmd.Process.Pid); pid > 0 {
					tick.Reset(10 * time.Millisecond)
					if err := podunit.WritePid(pid); err != nil {
						log.Error(err.Error())
					}
				}
			}
			// Until systemd in the pod has installed its handlers the
			// kernel drops the signal (the pod's init ignores what it
			// does not catch): a stop right after start would be lost.
			if stops == 1 && catches(pid, podunit.SigPoweroff) {
				cmd.Process.Signal(syscall.SIGTERM)
				stops++
			}
			// The ready marker is written once every app has started (and
			// has notified, for apps that support it).
			if !ready {
				if _, err := os.Stat(pod.ReadyFile); err == nil {
					ready = true
					if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
						log.Warn("notify ready", "err", err)
					}
				}
			}
			if pid > 0 && ready && stops != 1 {
				tick.Stop()
			}
		}
	}
}

// propagateNoise is what nspawn prints on exit on hosts whose /run is not a
// tmpfs, where it may not remove its propagation directory (run does).
const propagateNoise = `Attempted to remove disk file system under "/run/systemd/nspawn/propagate/%s", and we can't allow that.`

// dropLine copies what it is given to w, line by line, except the line
// equal to line.
type dropLine struct {
	w    io.Writer
	line string
	buf  []byte // a partial line
}

func (d *dropLine) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for {
		i := bytes.IndexByte(d.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if string(d.buf[:i]) != d.line {
			if _, err := d.w.Write(d.buf[:i+1]); err != nil {
				return len(p), err
			}
		}
		d.buf = d.buf[i+1:]
	}
}

// Flush writes a last line that had no newline.
func (d *dropLine) Flush() error {
	if len(d.buf) == 0 || string(d.buf) == d.line {
		return nil
	}
	_, err := d.w.Write(d.buf)
	d.buf = nil
	return err
}

// catches reports whether process pid blocks or catches sig, so that the
// signal is not dropped: systemd blocks the signals it reads from a signalfd.
func catches(pid int, sig syscall.Signal) bool {
	if pid <= 0 {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if k == "SigBlk" || k == "SigCgt" {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err == nil && mask&(1<<(sig-1)) != 0 {
				return true
			}
		}
	}
	return false
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

// removePropagate removes the mount propagation directory nspawn leaves
// behind on hosts whose /run is not a tmpfs.
func removePropagate(uuid string) {
	os.RemoveAll("/run/systemd/nspawn/propagate/" + pod.MachineName(uuid))
}
