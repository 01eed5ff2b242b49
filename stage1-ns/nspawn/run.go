package nspawn

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/appc/spec/schema"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
	"github.com/skiffpod/skiff/pkg/userns"
)

// Isolator is stage1-ns's stage1kit.Isolator: a pod is a systemd-nspawn
// container booting systemd.
type Isolator struct {
	Nspawn string // the systemd-nspawn binary; "" finds it in PATH
}

var _ stage1kit.Isolator = Isolator{}

// Boot prepares the pod whose directory is the working directory and
// starts systemd-nspawn on it.
func (i Isolator) Boot(log *slog.Logger, a pod.RunArgs) (stage1kit.Pod, []podunit.App, error) {
	url, stopMetadata, err := serveMetadata(log, &a)
	if err != nil {
		return nil, nil, err
	}
	c, apps, err := i.boot(log, a, url, stopMetadata)
	if err != nil {
		stopMetadata()
		return nil, nil, err
	}
	return c, apps, nil
}

// boot is Boot once the metadata service runs at url; stopMetadata stops it.
func (i Isolator) boot(log *slog.Logger, a pod.RunArgs, url string, stopMetadata func()) (stage1kit.Pod, []podunit.App, error) {
	var users userns.Range
	if a.PrivateUsers != "" {
		var err error
		if users, err = userns.Parse(a.PrivateUsers); err != nil {
			return nil, nil, fmt.Errorf("run: %w: --private-users: %w", ErrUsage, err)
		}
	}
	bopts := appspec.Options{Hostname: a.Hostname, Interactive: a.Interactive, MetadataURL: url}
	if a.PrivateUsers != "" && a.Net != "none" {
		// nspawn drops it in a user namespace that shares a network
		// namespace the pod does not own: binding a low port there needs
		// it in the namespace's owner, the host's (docs/user-namespaces.md).
		bopts.Withheld = []string{"CAP_NET_BIND_SERVICE"}
	}
	bundle, err := podunit.AppBundle(bopts)
	if a.NetWait != 0 {
		// The hosts lines come once the network is attached (stage1kit).
		bundle, err = podunit.AppBundleHosts(bopts, nil), nil
	}
	if err != nil {
		return nil, nil, err
	}
	pm, apps, pass, err := podunit.Prepare(log, a.UUID, a.Interactive, a.NetWait != 0, bundle, nil)
	if err != nil {
		return nil, nil, err
	}
	if a.Interactive && podunit.PipedStdin() {
		// No console: the app reads the pipe through a FIFO (podunit.FeedStdin).
		a.Interactive = false
		if err := podunit.FeedStdin(pod.Stage1Rootfs, os.Stdin); err != nil {
			return nil, nil, err
		}
	}
	if a.Mutable {
		// For the apps added later: AC_METADATA_URL, capabilities withheld.
		if err := podunit.WriteAppOptions(bopts); err != nil {
			return nil, nil, err
		}
		if err := shareApps(); err != nil {
			return nil, nil, err
		}
	}
	volBinds, err := volumes(pm, int(users.Base))
	if err != nil {
		return nil, nil, err
	}
	// Only limits need the v1 cgroups, and only they fail where the v1
	// hierarchies are read-only (inside a container, as on a systemd test host).
	var cgBinds []string
	leave := func() {}
	switch {
	case limited(apps):
		cgBinds, leave, err = setupCgroups(a.UUID, apps, a.Mutable)
	case a.Mutable && cgroupV1():
		// For the limits of apps added later (addAppCgroups); where the
		// hierarchies are read-only, added apps cannot have limits.
		if cgBinds, leave, err = setupCgroups(a.UUID, apps, true); err != nil {
			log.Warn("added apps cannot have memory or cpu limits: the pod has no v1 cgroups of its own", "err", err)
			leave()
			cgBinds, leave, err = nil, func() {}, nil
		}
	}
	leavePids := func() {}
	if err == nil {
		var limit int64
		if limit, err = podunit.PidsLimit(pm); err == nil {
			leavePids, err = setupPids(log, a.UUID, limit)
		}
	}
	leaveDevices := func() {}
	if err == nil {
		var devBinds []string
		devBinds, leaveDevices, err = setupDevices(log, a.UUID, pm)
		cgBinds = append(cgBinds, devBinds...)
	}
	leaveTracking := func() {}
	if err == nil && !stage1kit.Machined() {
		// nspawn runs with --keep-unit: the pod gets our cgroup.
		leaveTracking, err = setupTracking(log, a.UUID)
	}
	cleanup := func() {
		stopMetadata()
		leave()
		leavePids()
		leaveDevices()
		leaveTracking()
		// What is left once nspawn has gone: it was killed, not the pod.
		if err := killPod(a.UUID); err != nil {
			log.Warn("clean up", "err", err)
		}
		if err := removeCgroups(a.UUID); err != nil {
			log.Warn("clean up", "err", err)
		}
		removePropagate(a.UUID)
	}
	var args []string
	if err == nil {
		opts := append(volBinds, cgBinds...)
		if caps := podunit.RetainedCaps(apps); a.Mutable || appspec.Insecure(pm, "capabilities") {
			// An app sandbox's apps come later, with capabilities not known
			// yet: the pod's init holds every one, and stage2 gives each app
			// only its own (docs/app-sandbox.md). --insecure-options=capabilities
			// gives the apps every one.
			opts = append(opts, "--capability=all")
		} else if len(caps) > 0 {
			// nspawn's default set lacks some (CAP_NET_ADMIN without a private
			// network, CAP_SYS_TIME, ...); stage2 cannot give more than init has.
			opts = append(opts, "--capability="+strings.Join(caps, ","))
		}
		args, err = nspawnArgs(a, opts)
	}
	var c *container
	if err == nil {
		if !stage1kit.Machined() {
			log.Debug("not registering the pod with systemd-machined: the host's PID 1 is not systemd")
		}
		log.Debug("start pod", "args", args)
		c, err = start(log, i.Nspawn, a, a.Mutable || appspec.Insecure(pm, "seccomp"), args, pass, cleanup)
	}
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return c, apps, nil
}

func limited(apps []podunit.App) bool {
	for _, a := range apps {
		if a.Limited() {
			return true
		}
	}
	return false
}

// volumes makes the pod's empty volumes as directories of the stage1
// rootfs and returns the nspawn binds of its host volumes; stage2 mounts
// both from /skiff/volumes/<name> into the apps.
func volumes(pm *schema.PodManifest, root int) ([]string, error) {
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
			if err := podunit.EmptyVolume(v, root); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("volume %s: unknown kind %q", v.Name, v.Kind)
		}
	}
	return binds, nil
}

func nspawnArgs(o pod.RunArgs, binds []string) ([]string, error) {
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
	case !stage1kit.Machined():
		args = append(args, "--register=no", "--keep-unit")
	case stage1kit.InService():
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
		if o.PrivateUsers == "" {
			args = append(args, "--network-namespace-path="+o.NetNS)
		} // else nspawn starts in the namespace (start)
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
	if o.PrivateUsers != "" {
		// stage0 idmapped the image trees into the range: nspawn must
		// neither chown nor idmap the root (it cannot idmap an overlay).
		args = append(args, "--private-users="+o.PrivateUsers, "--private-users-ownership=off")
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

// nspawnEnv is systemd-nspawn's environment, from run's. The service
// manager's variables are for run, the unit's main process: nspawn's own
// READY=1 would come too early and from the wrong pid. SYSTEMD_SECCOMP
// is skiff's to set: only an app sandbox runs without nspawn's filter
// (and a pod run with --insecure-options=seccomp, which asked for none),
// besides a pod whose init installs nspawn's filter itself (filter.go);
// an app sandbox's apps each get exactly their own from stage2 (the default
// profile unless asked otherwise, none for an unconfined or privileged
// CRI container); nspawn's, on the whole pod, would be on top of every
// one (docs/seccomp.md). Any other pod keeps it, whatever run inherited.
func nspawnEnv(environ []string, noFilter bool, ipc string) []string {
	env := slices.DeleteFunc(slices.Clone(environ), func(e string) bool {
		k, _, _ := strings.Cut(e, "=")
		return k == "NOTIFY_SOCKET" || k == "LISTEN_FDS" || k == "LISTEN_PID" || k == "LISTEN_FDNAMES" || k == "SYSTEMD_SECCOMP" ||
			strings.HasPrefix(k, "SYSTEMD_NSPAWN_SHARE_")
	})
	if noFilter {
		env = append(env, "SYSTEMD_SECCOMP=0")
	}
	if ipc == "parent" {
		// nspawn's way (since 233, when --share-system went) to leave the
		// pod in the host's IPC namespace, as rkt's stage1 did.
		env = append(env, "SYSTEMD_NSPAWN_SHARE_NS_IPC=true")
	}
	return env
}

// container is a running systemd-nspawn, run's child.
type container struct {
	log     *slog.Logger
	cmd     *exec.Cmd
	stderr  *dropLine
	cleanup func()
	init    atomic.Int64  // the pod's init, once known (recordInit)
	done    chan struct{} // closed when nspawn has exited
	err     error         // nspawn's Wait, once done is closed
}

var _ stage1kit.Pod = (*container)(nil)

// start starts systemd-nspawn with args as run's child, handing the pod
// the sockets in pass, and records the pod's init pid once it runs.
func start(log *slog.Logger, bin string, o pod.RunArgs, noFilter bool, args []string, pass []*os.File, cleanup func()) (*container, error) {
	if bin == "" {
		bin = "systemd-nspawn"
	}
	env := nspawnEnv(os.Environ(), noFilter, o.IPC)
	var plan filterPlan
	if !noFilter {
		if plan = planFilter(log, bin, args, env); plan.sum != "" {
			env = nspawnEnv(os.Environ(), true, o.IPC)
			args = append([]string{"--setenv=" + filterEnv + "=" + plan.sum}, args...)
		}
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	if len(pass) > 0 {
		// nspawn hands fds 3.. to the pod's systemd when LISTEN_PID names
		// nspawn itself, a pid known only after the fork: a shell sets it
		// to its own and execs nspawn.
		cmd.Env = append(cmd.Env, "LISTEN_FDS="+strconv.Itoa(len(pass)))
		cmd.ExtraFiles = pass
		cmd.Path, cmd.Err = exec.LookPath("sh")
		cmd.Args = append([]string{"sh", "-c", `LISTEN_PID=$$ exec "$0" "$@"`, bin}, args...)
	}
	if o.PrivateUsers != "" && o.NetNS != "" && cmd.Err == nil {
		// nspawn 252 joins --network-namespace-path from inside the pod's
		// user namespace, which may not (EPERM): it starts in the network
		// namespace instead, which the pod then shares.
		path := cmd.Path
		cmd.Path, cmd.Err = exec.LookPath("nsenter")
		cmd.Args = append([]string{"nsenter", "--net=" + o.NetNS, "--", path}, cmd.Args[1:]...)
	}
	stderr := &dropLine{w: os.Stderr, lines: []string{fmt.Sprintf(propagateNoise, pod.MachineName(o.UUID)), haltNoise}}
	cmd.Stderr = stderr
	if o.Interactive {
		cmd.Stdin, cmd.Stdout = os.Stdin, os.Stdout
	} else {
		// The console is a pty whose line discipline turns \n into \r\n.
		cmd.Stdout = stage1kit.CRLF(os.Stdout)
	}
	err := cmd.Start()
	for _, f := range pass {
		f.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	c := &container{log: log, cmd: cmd, stderr: stderr, cleanup: cleanup, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	go c.recordInit(plan.learn)
	return c, nil
}

// recordInit finds the pod's init and writes the pid file, then learns
// nspawn's filter from it into the file learn names, if any.
func (c *container) recordInit(learn string) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		if pid := initOf(c.cmd.Process.Pid); pid > 0 {
			c.init.Store(int64(pid))
			if err := stage1kit.WritePid(pid); err != nil {
				c.log.Error(err.Error())
			}
			if learn != "" {
				learnFilter(c.log, c.cmd.Process.Pid, pid, learn, c.done)
			}
			return
		}
	}
}

// Wait waits for nspawn to exit and undoes what run did on the host.
func (c *container) Wait() error {
	<-c.done
	c.stderr.Flush()
	c.cleanup()
	if c.err != nil {
		return fmt.Errorf("systemd-nspawn: %w", c.err)
	}
	return nil
}

// Poweroff records the stop request and sends nspawn SIGTERM, which it
// turns into SIGRTMIN+4 to the pod's init: a clean poweroff. Until systemd
// in the pod has installed its handlers the kernel drops that signal (the
// pod's init ignores what it does not catch), so a stop right after start
// waits for them.
func (c *container) Poweroff() error {
	if err := podunit.Stopping(pod.Stage1Rootfs); err != nil {
		c.log.Warn("stop pod", "err", err)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for !blocks(int(c.init.Load()), podunit.SigPoweroff) {
		select {
		case <-c.done:
			return nil
		case <-tick.C:
		}
	}
	return c.cmd.Process.Signal(syscall.SIGTERM)
}

// Kill sends nspawn SIGTERM: after the first, it kills the pod.
func (c *container) Kill() { c.cmd.Process.Signal(syscall.SIGTERM) }

// propagateNoise is what nspawn prints on exit on hosts whose /run is not a
// tmpfs, where it may not remove its propagation directory (run does).
const propagateNoise = `Attempted to remove disk file system under "/run/systemd/nspawn/propagate/%s", and we can't allow that.`

// haltNoise is what nspawn prints when run stops the pod (SIGTERM): run,
// not nspawn, decides what a second stop does, and a pod whose network
// could not be attached is stopped with nothing but stage0's error.
const haltNoise = "Trying to halt container. Send SIGTERM again to trigger immediate termination."

// dropLine copies what it is given to w, line by line, except the lines
// equal to one of lines.
type dropLine struct {
	w     io.Writer
	lines []string
	buf   []byte // a partial line
}

func (d *dropLine) Write(p []byte) (int, error) {
	d.buf = append(d.buf, p...)
	for {
		i := bytes.IndexByte(d.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if !slices.Contains(d.lines, string(d.buf[:i])) {
			if _, err := d.w.Write(d.buf[:i+1]); err != nil {
				return len(p), err
			}
		}
		d.buf = d.buf[i+1:]
	}
}

// Flush writes a last line that had no newline.
func (d *dropLine) Flush() error {
	if len(d.buf) == 0 || slices.Contains(d.lines, string(d.buf)) {
		return nil
	}
	_, err := d.w.Write(d.buf)
	d.buf = nil
	return err
}

// blocks reports whether the pod's init pid blocks sig, so that the
// signal waits for it instead of being dropped: systemd blocks the signals
// it reads from a signalfd (and never unblocks them). Until the init is
// systemd it is stage1's InitMain, which drops every signal: not yet. A
// handler (SigCgt) does not count: during its execve of systemd the init
// already shows systemd's executable but still InitMain's handlers, which
// the kernel resets a moment later, dropping a signal queued meanwhile
// (a pod stopped right at its start then never powered off).
func blocks(pid int, sig syscall.Signal) bool {
	if pid <= 0 || isInit(pid) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, _ := strings.Cut(l, ":"); k == "SigBlk" {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(sig-1)) != 0
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
