package nspawn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
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
	if err := podunit.KeepLock(); err != nil {
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
	imgs, err := imageManifests(pm)
	if err != nil {
		return 0, err
	}
	if err := writeBundles(pm, imgs, o.Bundle); err != nil {
		return 0, err
	}
	listeners, err := listenFDs()
	if err != nil {
		return 0, err
	}
	extra, pass := activationUnits(log, imgs, listeners)
	for name, img := range imgs {
		if SupportsNotify(img) {
			extra[dropIn(unitName(name), "notify")] = "[Service]\nType=notify\nNotifyAccess=all\n"
		}
	}
	if err := prepareRoot(o.UUID, apps, o.Interactive, extra); err != nil {
		return 0, err
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
	if !machined() {
		log.Debug("not registering the pod with systemd-machined: the host's PID 1 is not systemd")
	}
	log.Debug("start pod", "args", args)
	stopped, nerr := nspawn(log, o, args, pass)
	st, err := podExit(pod.Stage1Rootfs, apps, stopped)
	if err != nil {
		return 0, errors.Join(err, nerr)
	}
	return st, nil
}

func limited(apps []App) bool {
	for _, a := range apps {
		if a.Memory > 0 || a.CPU > 0 {
			return true
		}
	}
	return false
}

// NotifySocket is where the pod's systemd listens for sd_notify(3)
// messages; apps that support notify get it bound into their root.
const NotifySocket = "/run/systemd/notify"

// SupportsNotify reports whether img says its app sends READY=1 to
// NOTIFY_SOCKET (appc's executor annotation); its unit then waits for it.
func SupportsNotify(img *schema.ImageManifest) bool {
	v, _ := img.Annotations.Get("appc.io/executor/supports-systemd-notify")
	return v == "true"
}

// dropIn is the path, relative to the unit directory, of drop-in name of unit.
func dropIn(unit, name string) string { return unit + ".d/skiff-" + name + ".conf" }

// listenFDs returns the sockets the service manager passed to run
// (sd_listen_fds(3)): stage0 exec'd run in place, so LISTEN_PID names run.
func listenFDs() ([]*os.File, error) {
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return nil, fmt.Errorf("run: %w: LISTEN_FDS=%q", ErrUsage, os.Getenv("LISTEN_FDS"))
	}
	var files []*os.File
	for fd := 3; fd < 3+n; fd++ {
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), "listen-fd-"+strconv.Itoa(fd)))
	}
	return files, nil
}

// activationUnits matches each passed socket, by port number and
// protocol, to the apps whose image marks that port socketActivated. It
// returns, by path relative to the unit directory, a socket unit per such
// app whose addresses are exactly the sockets' (so the pod's systemd adopts
// the fds nspawn passes it, see sd_listen_fds(3) and systemd.socket(5)) and
// a drop-in that gives the app's service those sockets; and the sockets to
// pass. A socket no app wants is closed.
func activationUnits(log *slog.Logger, imgs map[string]*schema.ImageManifest, listeners []*os.File) (map[string]string, []*os.File) {
	units := map[string]string{}
	var pass []*os.File
	names := make([]string, 0, len(imgs))
	for n := range imgs {
		names = append(names, n)
	}
	sort.Strings(names)
	listen := map[string][]string{} // app → Listen*= lines
	for _, f := range listeners {
		setting, proto, port, err := socketAddr(int(f.Fd()))
		app := ""
		for _, n := range names {
			if a := imgs[n].App; a != nil {
				for _, p := range a.Ports {
					if p.SocketActivated && int(p.Port) == port && p.Protocol == proto && app == "" {
						app = n
					}
				}
			}
		}
		if app == "" {
			log.Warn("no app has this socket-activated port; not passing the socket", "socket", setting, "err", err)
			f.Close()
			continue
		}
		listen[app] = append(listen[app], setting)
		pass = append(pass, f)
	}
	var socks []string
	for app, lines := range listen {
		u := unitName(app)
		sock := strings.TrimSuffix(u, ".service") + ".socket"
		units[sock] = fmt.Sprintf("[Unit]\nDescription=skiff app %s sockets\nDefaultDependencies=no\n\n[Socket]\n%s\n", app, strings.Join(lines, "\n"))
		units[dropIn(u, "sockets")] = "[Service]\nSockets=" + sock + "\n"
		socks = append(socks, sock)
	}
	if len(socks) > 0 {
		// systemd hands inherited fds only to units loaded when it
		// starts, before it loads the default target: a dependency of the
		// root slice (loaded first, always) loads the socket units then.
		sort.Strings(socks)
		units[dropIn("-.slice", "sockets")] = "[Unit]\nBefore=" + strings.Join(socks, " ") + "\n"
	}
	return units, pass
}

// socketAddr returns the socket unit setting that names the socket fd
// (ListenStream=ADDR:PORT or ListenDatagram=...), its appc protocol and port.
func socketAddr(fd int) (setting, proto string, port int, err error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return "", "", 0, fmt.Errorf("inherited socket %d: %w", fd, err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", "", 0, fmt.Errorf("inherited socket %d: %w", fd, err)
	}
	var addr string
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		addr, port = net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port)), sa.Port
	case *unix.SockaddrInet6:
		addr, port = net.JoinHostPort(net.IP(sa.Addr[:]).String(), strconv.Itoa(sa.Port)), sa.Port
	default:
		return "", "", 0, fmt.Errorf("inherited socket %d: %w: not an IP socket", fd, ErrUsage)
	}
	switch typ {
	case unix.SOCK_STREAM:
		return "ListenStream=" + addr, "tcp", port, nil
	case unix.SOCK_DGRAM:
		return "ListenDatagram=" + addr, "udp", port, nil
	}
	return "", "", 0, fmt.Errorf("inherited socket %d: %w: socket type %d", fd, ErrUsage, typ)
}

// imageManifests reads every app's image manifest, by app name.
func imageManifests(pm *schema.PodManifest) (map[string]*schema.ImageManifest, error) {
	imgs := map[string]*schema.ImageManifest{}
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		b, err := os.ReadFile(pod.AppManifest(name))
		if err != nil {
			return nil, fmt.Errorf("read image manifest of %s: %w", name, err)
		}
		var img schema.ImageManifest
		if err := json.Unmarshal(b, &img); err != nil {
			return nil, fmt.Errorf("parse image manifest of %s: %w", name, err)
		}
		imgs[name] = &img
	}
	return imgs, nil
}

// writeBundles writes every app's bundle beside its rootfs.
func writeBundles(pm *schema.PodManifest, imgs map[string]*schema.ImageManifest, write BundleFunc) error {
	for i := range pm.Apps {
		ra := &pm.Apps[i]
		name := ra.Name.String()
		root, err := os.OpenRoot(pod.AppRootfs(name))
		if err != nil {
			return fmt.Errorf("open rootfs of %s: %w", name, err)
		}
		err = write(pod.AppDir(name), pm, ra, imgs[name], root)
		root.Close()
		if err != nil {
			return fmt.Errorf("write bundle of %s: %w", name, err)
		}
	}
	return nil
}

// prepareRoot writes the machine-id, the units and the extra unit files
// (paths relative to the unit directory) into the stage1 rootfs and clears
// what a previous boot left.
func prepareRoot(uuid string, apps []App, interactive bool, extra map[string]string) error {
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
	for name, u := range extra {
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
		errs = append(errs, root.MkdirAll(filepath.Dir(p), 0o755), root.WriteFile(p, []byte(content), 0o644))
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
		args = append(args, "--console=read-only")
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

// nspawn runs systemd-nspawn as run's child, records the pod's init pid,
// turns SIGTERM/SIGINT into a clean poweroff of the pod, hands the pod the
// sockets in pass, and tells the service manager when the pod is ready.
// It reports whether the pod was asked to stop.
func nspawn(log *slog.Logger, o RunOptions, args []string, pass []*os.File) (bool, error) {
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
		return false, fmt.Errorf("start systemd-nspawn: %w", err)
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
				return stops > 0, fmt.Errorf("systemd-nspawn: %w", err)
			}
			return stops > 0, nil
		case s := <-sigs:
			log.Debug("stop pod", "signal", s)
			if stops++; stops == 1 && notify {
				daemon.SdNotify(false, daemon.SdNotifyStopping)
			}
			// nspawn turns SIGTERM into SIGRTMIN+4 to the pod's init, a
			// second one into killing the pod.
			if stops > 1 || catches(pid, sigPoweroff) {
				cmd.Process.Signal(syscall.SIGTERM)
				stops++
			} else {
				tick.Reset(time.Millisecond)
			}
		case <-tick.C:
			if pid == 0 {
				if pid = initOf(cmd.Process.Pid); pid > 0 {
					tick.Reset(10 * time.Millisecond)
					if err := writeFileAtomic(pod.PidFile, strconv.Itoa(pid)); err != nil {
						log.Error("record pod pid", "err", err)
					}
				}
			}
			// Until systemd in the pod has installed its handlers the
			// kernel drops the signal (the pod's init ignores what it
			// does not catch): a stop right after start would be lost.
			if stops == 1 && catches(pid, sigPoweroff) {
				cmd.Process.Signal(syscall.SIGTERM)
				stops++
			}
			// The ready marker is written once every app has started (and
			// has notified, for apps that support it).
			if !ready {
				if _, err := os.Stat(filepath.Join(pod.Stage1Rootfs, readyFile)); err == nil {
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

// podExit reads what the hooks recorded in the stage1 rootfs. A pod that
// was stopped may have apps that never started: they did not fail.
func podExit(rootfs string, apps []App, stopped bool) (int, error) {
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
		if _, err := readStatus(rootfs, a.Name); err != nil && !(stopped && errors.Is(err, os.ErrNotExist)) {
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
