//go:build e2e

package tests

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/skiffpod/skiff/tests/systemdhost"
)

// TestSystemdHost runs skiff on a real systemd host (tests/systemdhost: a
// Debian root booted with systemd-nspawn -b, built by `make testhost`),
// booted once for all of these checks and powered off at the end, also
// when one fails. skiff, the stage1 images and the test images are bound
// in at their own paths; the pods' data directory too.
func TestSystemdHost(t *testing.T) {
	if _, err := os.Stat(filepath.Join(toolDir, "stage1-ns.aci")); err != nil {
		t.Fatalf("bin/stage1-ns.aci missing: run `make build` first")
	}
	s := &sysHost{data: t.TempDir()}
	// Built before the boot: the images are written beside the data dir.
	s.socketACI = probeVariant(t, s.data, "probe-socket", func(a *types.App) {
		for i := range a.Ports {
			a.Ports[i].SocketActivated = true
		}
		// For KVMDatagramSocketRefused: stage1-kvm forwards stream sockets only.
		a.Ports = append(a.Ports, types.Port{Name: "dns", Protocol: "udp", Port: 8053, Count: 1, SocketActivated: true})
	}, nil)
	s.notifyACI = probeVariant(t, s.data, "probe-notify", func(*types.App) {},
		types.Annotations{{Name: "appc.io/executor/supports-systemd-notify", Value: "true"}})
	s.h = systemdhost.Boot(t, systemdhost.Options{Binds: []string{toolDir, binDir, s.data}})
	s.config = filepath.Join(s.data, "config")
	s.dir = filepath.Join(s.data, "data")
	s.mustRun(t, s.skiff("trust", "--prefix", "skiff.local", image(t, "test-key.asc"))...)
	// Before the host goes down: gc runs stage1's gc inside the host,
	// which removes the journal links there.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.h.Run(ctx, s.skiff("gc", "--grace-period=0", "--expire-prepared=0")...)
	})

	t.Run("MachineAndJournal", s.testMachineAndJournal)
	t.Run("Terminate", s.testTerminate)
	t.Run("SystemdRunStop", s.testSystemdRunStop)
	t.Run("UnitExitStatus", s.testUnitExitStatus)
	t.Run("SocketActivation", s.testSocketActivation)
	t.Run("NotifyReady", s.testNotifyReady)
	t.Run("KVMMachineAndJournal", s.testKVMMachineAndJournal)
	t.Run("KVMPoweroff", s.testKVMPoweroff)
	t.Run("KVMNotifyReady", s.testKVMNotifyReady)
	t.Run("KVMSocketActivation", s.testKVMSocketActivation)
	t.Run("KVMDatagramSocketRefused", s.testKVMDatagramSocketRefused)
}

// sysHost is the booted host and skiff's directories in it.
type sysHost struct {
	h                    *systemdhost.Host
	data                 string // bound into the host
	dir, config          string // skiff's --dir and --local-config
	socketACI, notifyACI string
}

// skiff returns the command line that runs skiff in the host.
func (s *sysHost) skiff(args ...string) []string {
	return append([]string{skiffBin, "--dir=" + s.dir, "--local-config=" + s.config}, args...)
}

func (s *sysHost) run(ctx context.Context, args ...string) (string, error) {
	out, _, err := s.h.Run(ctx, args...)
	return out, err
}

func (s *sysHost) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := s.run(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// stopCleanly stops unit (a pod's service) with systemctl within limit:
// the pod gets SIGTERM, nothing is SIGKILLed, the unit's log has none of
// bad, and the pod's app status is recorded.
func (s *sysHost) stopCleanly(t *testing.T, unit, uuid string, limit time.Duration, bad ...string) {
	t.Helper()
	start := time.Now()
	s.mustRun(t, "systemctl", "stop", unit)
	d := time.Since(start)
	t.Logf("systemctl stop %s took %v", unit, d.Round(time.Millisecond))
	if d > limit {
		t.Errorf("systemctl stop took %v", d)
	}
	log := s.mustRun(t, "journalctl", "-u", unit, "-o", "cat", "--no-pager")
	mustContain(t, log, "SIGNAL=terminated", unit+".service: Deactivated successfully.")
	mustNotContain(t, log, append(bad, "SIGKILL")...)
	if st := s.mustRun(t, s.skiff("status", uuid)...); !strings.Contains(st, "app-probe=") {
		t.Errorf("skiff status after stop has no app status:\n%s", st)
	}
}

// prop returns one property of a unit.
func (s *sysHost) prop(t *testing.T, unit, name string) string {
	t.Helper()
	return strings.TrimSpace(s.mustRun(t, "systemctl", "show", unit, "-p", name, "--value"))
}

// startPod runs a probe pod as transient unit unit, the recipe of
// docs/systemd.md, and returns its uuid once machined knows it.
func (s *sysHost) startPod(t *testing.T, unit string, probeArgs ...string) string {
	t.Helper()
	// The test host has no CNI plugins: the host's network, as before pod
	// networks existed.
	return s.startPodWith(t, unit, nil, []string{"--net=host"}, probeArgs...)
}

// startPodWith is startPod with more systemd-run and skiff run flags.
func (s *sysHost) startPodWith(t *testing.T, unit string, unitFlags, runFlags []string, probeArgs ...string) string {
	t.Helper()
	uuidFile := filepath.Join(s.data, unit+".uuid")
	args := append([]string{"systemd-run", "--unit=" + unit, "--slice=machine", "-p", "KillMode=mixed", "-p", "Delegate=yes"}, unitFlags...)
	args = append(args, s.skiff(append(append([]string{"run", "--uuid-file-save=" + uuidFile}, runFlags...), image(t, "probe.aci"), "--")...)...)
	s.mustRun(t, append(args, probeArgs...)...)
	t.Cleanup(func() { s.h.Run(context.Background(), "systemctl", "stop", unit) })
	var uuid string
	waitFor(t, "pod of "+unit+" in machinectl list", 30*time.Second, func() bool {
		b, _ := os.ReadFile(uuidFile)
		uuid = strings.TrimSpace(string(b))
		return uuid != "" && s.machine(t, uuid) != ""
	})
	return uuid
}

// machine returns the pod's line in machinectl list, or "".
func (s *sysHost) machine(t *testing.T, uuid string) string {
	t.Helper()
	for _, l := range strings.Split(s.mustRun(t, "machinectl", "list", "--no-legend"), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "skiff-"+uuid {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// waitInactive waits until unit has ended and returns how long that took.
func (s *sysHost) waitInactive(t *testing.T, unit string) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, unit+" to end", time.Minute, func() bool {
		st := s.prop(t, unit, "ActiveState")
		return st == "inactive" || st == "failed"
	})
	return time.Since(start)
}

// checkGone checks that nothing of pod uuid is left in the host: no
// machine, no process of it, and after skiff rm no mount and no journal link.
func (s *sysHost) checkGone(t *testing.T, uuid string) {
	t.Helper()
	if l := s.machine(t, uuid); l != "" {
		t.Errorf("machinectl list still shows the pod: %s", l)
	}
	ps := s.mustRun(t, "ps", "-eo", "pid,args")
	for _, l := range strings.Split(ps, "\n") {
		if strings.Contains(l, uuid) || strings.Contains(l, "/probe") {
			t.Errorf("pod process left: %s", l)
		}
	}
	s.mustRun(t, s.skiff("rm", uuid)...)
	if m := findLine(s.mustRun(t, "cat", "/proc/self/mountinfo"), uuid); m != "" {
		t.Errorf("mount left after skiff rm: %s", m)
	}
	link := "/var/log/journal/" + strings.ReplaceAll(uuid, "-", "")
	if _, err := s.run(context.Background(), "test", "!", "-L", link); err != nil {
		t.Errorf("journal link %s left after skiff rm", link)
	}
}

// testMachineAndJournal: the pod is a machine (machinectl list, status),
// its apps' output is in journalctl -M -t while it runs and in the linked
// journal after machinectl poweroff ended it cleanly.
func (s *sysHost) testMachineAndJournal(t *testing.T) {
	const unit = "skiff-machine"
	uuid := s.startPod(t, unit, "-print-hostname", "-sleep=300s")
	line := s.machine(t, uuid)
	if f := strings.Fields(line); len(f) < 3 || f[1] != "container" || f[2] != "systemd-nspawn" {
		t.Errorf("machinectl list: want a container registered by systemd-nspawn, got %q", line)
	}
	t.Logf("machinectl list: %s", line)
	want := "HOSTNAME=skiff-" + uuid
	var got string
	waitFor(t, "journalctl -M -t probe", 30*time.Second, func() bool {
		got = findLine(s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe", "-o", "cat", "--no-pager"), want)
		return got != ""
	})
	t.Logf("journalctl -M skiff-%s -t probe: %s", uuid, got)
	status := s.mustRun(t, "machinectl", "status", "skiff-"+uuid, "--no-pager")
	mustContain(t, status, "Unit: "+unit+".service", "skiff-app-probe.service", "/probe -print-hostname")

	start := time.Now()
	s.mustRun(t, "machinectl", "poweroff", "skiff-"+uuid)
	d := s.waitInactive(t, unit)
	t.Logf("machinectl poweroff: unit ended after %v", time.Since(start).Round(time.Millisecond))
	if r, st := s.prop(t, unit, "Result"), s.prop(t, unit, "ExecMainStatus"); r != "success" || st != "0" {
		t.Errorf("after poweroff: Result=%s ExecMainStatus=%s, want success and 0", r, st)
	}
	if d > 10*time.Second {
		t.Errorf("poweroff took %v", d)
	}
	// The journal outlives the pod until gc.
	logs := s.mustRun(t, "journalctl", "-m", "_MACHINE_ID="+strings.ReplaceAll(uuid, "-", ""), "-t", "probe", "-o", "cat", "--no-pager")
	mustContain(t, logs, want)
	mustContain(t, s.mustRun(t, s.skiff("logs", uuid)...), want)
	s.checkGone(t, uuid)
}

// testKVMMachineAndJournal: a stage1-kvm pod run as a transient unit is a
// machine of that unit; journalctl -M reads the guest's journal through the
// machine's leader (chrooted into the pod's stage1 rootfs); systemctl stop
// powers the VM off cleanly and leaves no machine, qemu or mount.
func (s *sysHost) testKVMMachineAndJournal(t *testing.T) {
	const unit = "skiff-kvm"
	uuid := s.startKVMPod(t, unit, "-print-env=AC_APP_NAME", "-sleep=60s")
	line := s.machine(t, uuid)
	// NAME CLASS SERVICE OS VERSION: the OS is the stage1 root's os-release.
	if f := strings.Fields(line); len(f) < 4 || f[1] != "container" || f[2] != "skiff" || f[3] != "skiff-stage1-kvm" {
		t.Errorf("machinectl list: want a container registered by skiff, OS skiff-stage1-kvm, got %q", line)
	}
	t.Logf("machinectl list: %s", line)
	status := s.mustRun(t, "machinectl", "status", "skiff-"+uuid, "--no-pager")
	mustContain(t, status, "Unit: "+unit+".service", "qemu-system-x86_64", "leader")
	s.waitAppLine(t, uuid, "AC_APP_NAME=probe")

	s.stopCleanly(t, unit, uuid, 20*time.Second, "stage1-kvm run: error:", "stage1-kvm run: warning:")
	if ps := s.mustRun(t, "ps", "-eo", "pid,args"); strings.Contains(ps, "qemu-system") {
		t.Errorf("qemu left after systemctl stop:\n%s", ps)
	}
	s.checkGone(t, uuid)
}

// testKVMPoweroff: machinectl poweroff, which signals the machine's
// leader, powers a KVM pod off cleanly.
func (s *sysHost) testKVMPoweroff(t *testing.T) {
	const unit = "skiff-kvm-poweroff"
	uuid := s.startKVMPod(t, unit, "-print-env=AC_APP_NAME", "-sleep=60s")
	s.waitAppLine(t, uuid, "AC_APP_NAME=probe") // the app runs: its SIGTERM can be seen
	start := time.Now()
	s.mustRun(t, "machinectl", "poweroff", "skiff-"+uuid)
	if d := s.waitInactive(t, unit); d > 20*time.Second {
		t.Errorf("machinectl poweroff: the unit ended only after %v", d)
	}
	t.Logf("machinectl poweroff: unit ended after %v", time.Since(start).Round(time.Millisecond))
	if r, st := s.prop(t, unit, "Result"), s.prop(t, unit, "ExecMainStatus"); r != "success" || st != "0" {
		t.Errorf("after poweroff: Result=%s ExecMainStatus=%s, want success and 0", r, st)
	}
	mustContain(t, s.mustRun(t, "journalctl", "-u", unit, "-o", "cat", "--no-pager"), "SIGNAL=terminated")
	s.checkGone(t, uuid)
}

// waitAppLine waits until journalctl -M shows the line of the probe app
// of pod uuid that contains want.
func (s *sysHost) waitAppLine(t *testing.T, uuid, want string) {
	t.Helper()
	var got string
	start := time.Now()
	waitFor(t, "journalctl -M -t probe", 45*time.Second, func() bool {
		got = findLine(s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe", "-o", "cat", "--no-pager"), want)
		return got != ""
	})
	t.Logf("journalctl -M skiff-%s -t probe: %s (after %v)", uuid, got, time.Since(start).Round(time.Millisecond))
}

// startKVMPod is startPod with --stage1=kvm, in a host that can run it.
func (s *sysHost) startKVMPod(t *testing.T, unit string, probeArgs ...string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(toolDir, "stage1-kvm.aci")); err != nil {
		t.Fatalf("bin/stage1-kvm.aci missing: run `make build` first")
	}
	if _, err := s.run(context.Background(), "test", "-x", "/usr/bin/qemu-system-x86_64"); err != nil {
		t.Fatalf("the test host has no qemu: rebuild it with `%s`", systemdhost.BuildTarget)
	}
	// The host's environment is not the test's: the accelerator TestMain chose, passed explicitly.
	return s.startPodWith(t, unit, []string{"--setenv=SKIFF_KVM_ACCEL=" + os.Getenv("SKIFF_KVM_ACCEL")}, []string{"--stage1=kvm", "--net=none"}, probeArgs...)
}

// testTerminate: machinectl terminate kills the pod at once.
func (s *sysHost) testTerminate(t *testing.T) {
	const unit = "skiff-terminate"
	uuid := s.startPod(t, unit, "-sleep=300s")
	start := time.Now()
	s.mustRun(t, "machinectl", "terminate", "skiff-"+uuid)
	if d := s.waitInactive(t, unit); d > 10*time.Second {
		t.Errorf("machinectl terminate: the unit ended only after %v", d)
	}
	t.Logf("machinectl terminate: unit ended after %v", time.Since(start).Round(time.Millisecond))
	s.checkGone(t, uuid)
}

// testSystemdRunStop: skiff is the unit's main process, the pod lives in
// the unit's cgroup, and systemctl stop powers the pod off cleanly.
func (s *sysHost) testSystemdRunStop(t *testing.T) {
	const unit = "skiff-stop"
	uuid := s.startPod(t, unit, "-sleep=300s")
	if st := strings.TrimSpace(s.mustRun(t, "systemctl", "is-active", unit)); st != "active" {
		t.Fatalf("systemctl is-active %s: %s", unit, st)
	}
	main := s.prop(t, unit, "MainPID")
	if comm := strings.TrimSpace(s.mustRun(t, "cat", "/proc/"+main+"/comm")); comm != "run" {
		t.Errorf("main process %s is %q, want stage1's run (exec'd by skiff)", main, comm)
	}
	var status string
	waitFor(t, "the app in systemctl status", 30*time.Second, func() bool {
		status = s.mustRun(t, "systemctl", "status", unit, "--no-pager")
		return strings.Contains(status, "/probe -sleep=300s")
	})
	mustContain(t, status, "systemd-nspawn", "CGroup: /machine.slice/"+unit+".service")
	if scopes := s.mustRun(t, "systemctl", "list-units", "--no-legend", "machine-*.scope"); strings.TrimSpace(scopes) != "" {
		t.Errorf("nspawn made a scope of its own, the pod is not in %s:\n%s", unit, scopes)
	}
	s.stopCleanly(t, unit, uuid, 10*time.Second, "stage1-ns run: error:")
	s.checkGone(t, uuid)
}

// testUnitExitStatus: a unit file whose pod's app exits 3 ends with
// ExecMainStatus=3.
func (s *sysHost) testUnitExitStatus(t *testing.T) {
	const unit = "skiff-exit3"
	uuidFile := filepath.Join(s.data, unit+".uuid")
	exec := strings.Join(s.skiff("run", "--net=host", "--uuid-file-save="+uuidFile, image(t, "probe.aci"), "--", "-exit=3"), " ")
	s.writeUnit(t, unit+".service", "[Service]\nExecStart="+exec+"\nKillMode=mixed\nDelegate=yes\nSlice=machine.slice\n")
	s.mustRun(t, "systemctl", "start", unit)
	s.waitInactive(t, unit)
	if st := s.prop(t, unit, "ExecMainStatus"); st != "3" {
		t.Errorf("%s: ExecMainStatus=%s, want 3", unit, st)
	}
	b, _ := os.ReadFile(uuidFile)
	s.checkGone(t, strings.TrimSpace(string(b)))
	s.mustRun(t, "systemctl", "reset-failed", unit)
}

// testSocketActivation: a .socket unit starts skiff on the first
// connection, and the app whose port is socketActivated serves it on the
// inherited socket.
func (s *sysHost) testSocketActivation(t *testing.T) {
	const unit = "skiff-sock"
	uuidFile := filepath.Join(s.data, unit+".uuid")
	exec := strings.Join(s.skiff("--insecure-options=image", "run", "--net=host", "--uuid-file-save="+uuidFile, s.socketACI, "--", "-listen-fds"), " ")
	s.writeUnit(t, unit+".socket", "[Socket]\nListenStream=127.0.0.1:8080\n")
	s.writeUnit(t, unit+".service", "[Service]\nExecStart="+exec+"\nKillMode=mixed\nDelegate=yes\nSlice=machine.slice\n")
	s.mustRun(t, "systemctl", "start", unit+".socket")
	t.Cleanup(func() { s.h.Run(context.Background(), "systemctl", "stop", unit+".socket", unit+".service") })

	start := time.Now()
	// bash's /dev/tcp is the only client in the host's minbase root.
	out := s.mustRun(t, "timeout", "60", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
	t.Logf("first connection answered after %v: %q", time.Since(start).Round(time.Millisecond), findLine(out, "hello"))
	mustContain(t, out, "200 OK", "hello from probe")
	b, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(b))
	waitFor(t, "the request in the pod's journal", 30*time.Second, func() bool {
		return strings.Contains(s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe-socket", "-o", "cat", "--no-pager"), "SERVED=GET /")
	})
	mustContain(t, s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe-socket", "-o", "cat", "--no-pager"), "LISTENERS=1")
	s.mustRun(t, "systemctl", "stop", unit+".socket", unit+".service")
	s.checkGone(t, uuid)
}

// testNotifyReady: under systemd-run --service-type=notify the unit stays
// activating while the app that supports notify is held before its
// READY=1 (it reads a FIFO first), turns active once it notified, and the
// app's server answers at once.
func (s *sysHost) testNotifyReady(t *testing.T) {
	const unit = "skiff-notify"
	uuidFile := filepath.Join(s.data, unit+".uuid")
	gate := s.fifoGate(t, "gate")
	args := append([]string{"systemd-run", "--unit=" + unit, "--service-type=notify", "--slice=machine", "-p", "KillMode=mixed", "-p", "Delegate=yes"},
		s.skiff("--insecure-options=image", "run", "--net=host", "--uuid-file-save="+uuidFile, "--volume=gate,kind=host,source="+gate,
			s.notifyACI, "--mount=volume=gate,target=/gate", "--", "-read-file=/gate/fifo", "-serve=127.0.0.1:8081", "-notify-ready", "-sleep=300s")...)
	t.Cleanup(func() { s.h.Run(context.Background(), "systemctl", "stop", unit) })
	// systemd-run returns when the start job is done: on READY=1.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := s.run(ctx, args...)
		done <- err
	}()
	waitFor(t, "the app in the pod", 30*time.Second, func() bool {
		out, _ := s.run(context.Background(), "systemctl", "status", unit, "--no-pager") // exits 3 while activating
		return strings.Contains(out, "/probe -read-file")
	})
	time.Sleep(time.Second) // time enough for a pod that would not wait for READY=1
	if st := s.prop(t, unit, "ActiveState"); st != "activating" {
		t.Fatalf("%s is %s while its app has not notified, want activating", unit, st)
	}
	select {
	case err := <-done:
		t.Fatalf("systemd-run returned before the app notified: %v", err)
	default:
	}

	s.mustRun(t, "timeout", "10", "sh", "-c", `echo open >"$1"`, "sh", filepath.Join(gate, "fifo"))
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out := s.mustRun(t, "timeout", "10", "bash", "-c", `exec 3<>/dev/tcp/127.0.0.1/8081 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
	t.Logf("%s active %v after the gate opened; the app answered at once: %q", unit, time.Since(start).Round(time.Millisecond), findLine(out, "hello"))
	mustContain(t, out, "hello from probe")
	if st := s.prop(t, unit, "ActiveState"); st != "active" {
		t.Errorf("%s is %s, want active", unit, st)
	}
	b, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(b))
	mustContain(t, s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe-notify", "-o", "cat", "--no-pager"), "READ_FILE=open", "NOTIFY_READY=1")
	s.mustRun(t, "systemctl", "stop", unit)
	s.checkGone(t, uuid)
}

// fifoGate makes a directory in the data dir holding a FIFO, "fifo", that
// holds back an app reading it until the test writes to it.
func (s *sysHost) fifoGate(t *testing.T, name string) string {
	t.Helper()
	gate := filepath.Join(s.data, name)
	if err := os.Mkdir(gate, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(gate, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return gate
}

// testKVMNotifyReady: NotifyReady for a stage1-kvm pod. The guest has no
// network and a FIFO on a 9p share is the guest's own pipe, so the app is
// held before its READY=1 by a FIFO that skiff enter, in the guest, opens.
func (s *sysHost) testKVMNotifyReady(t *testing.T) {
	const unit = "skiff-kvm-notify"
	uuidFile := filepath.Join(s.data, unit+".uuid")
	gate := s.fifoGate(t, "kvmgate")
	args := append([]string{"systemd-run", "--unit=" + unit, "--service-type=notify", "--slice=machine", "-p", "KillMode=mixed", "-p", "Delegate=yes",
		"--setenv=SKIFF_KVM_ACCEL=" + os.Getenv("SKIFF_KVM_ACCEL")},
		s.skiff("--insecure-options=image", "run", "--stage1=kvm", "--net=none", "--uuid-file-save="+uuidFile, "--volume=gate,kind=host,source="+gate,
			s.notifyACI, "--mount=volume=gate,target=/gate", "--", "-print-env=AC_APP_NAME", "-read-file=/gate/fifo", "-notify-ready", "-sleep=300s")...)
	t.Cleanup(func() { s.h.Run(context.Background(), "systemctl", "stop", unit) })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, err := s.run(ctx, args...)
		done <- err
	}()
	var uuid string
	waitFor(t, "the app in the guest's journal", 60*time.Second, func() bool {
		b, _ := os.ReadFile(uuidFile)
		uuid = strings.TrimSpace(string(b))
		out, _ := s.run(context.Background(), "journalctl", "-M", "skiff-"+uuid, "-t", "probe-notify", "-o", "cat", "--no-pager")
		return uuid != "" && strings.Contains(out, "AC_APP_NAME=probe-notify")
	})
	time.Sleep(time.Second) // time enough for a pod that would not wait for READY=1
	if st := s.prop(t, unit, "ActiveState"); st != "activating" {
		t.Fatalf("%s is %s while its app has not notified, want activating", unit, st)
	}
	select {
	case err := <-done:
		t.Fatalf("systemd-run returned before the app notified: %v", err)
	default:
	}

	s.mustRun(t, append([]string{"timeout", "60"}, s.skiff("enter", uuid, "--", "/probe", "-write-file=/gate/fifo", "-content=open")...)...)
	start := time.Now()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%s active %v after the gate opened", unit, time.Since(start).Round(time.Millisecond))
	if st := s.prop(t, unit, "ActiveState"); st != "active" {
		t.Errorf("%s is %s, want active", unit, st)
	}
	// The guest's journald writes over 9p, a little behind.
	waitFor(t, "the app's READY=1 in the guest's journal", 30*time.Second, func() bool {
		out := s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe-notify", "-o", "cat", "--no-pager")
		return strings.Contains(out, "READ_FILE=open") && strings.Contains(out, "NOTIFY_READY=1")
	})
	s.mustRun(t, "systemctl", "stop", unit)
	s.checkGone(t, uuid)
}

// testKVMSocketActivation: a .socket unit starts a stage1-kvm pod on the
// first connection, not before; run forwards that connection and later
// ones into the guest, where the app serves them on the socket the guest's
// systemd made and passed it (LISTEN_FDS=1 with its own LISTEN_PID, which
// the probe checks), and sees the guest's loopback as their peer.
func (s *sysHost) testKVMSocketActivation(t *testing.T) {
	const unit = "skiff-kvm-sock"
	uuidFile := filepath.Join(s.data, unit+".uuid")
	exec := strings.Join(s.skiff("--insecure-options=image", "run", "--stage1=kvm", "--net=none", "--uuid-file-save="+uuidFile, s.socketACI, "--", "-listen-fds"), " ")
	// The probe's port, which the image marks socketActivated.
	s.writeUnit(t, unit+".socket", "[Socket]\nListenStream=127.0.0.1:8080\n")
	s.writeUnit(t, unit+".service", "[Service]\nExecStart="+exec+"\nEnvironment=SKIFF_KVM_ACCEL="+os.Getenv("SKIFF_KVM_ACCEL")+
		"\nKillMode=mixed\nDelegate=yes\nSlice=machine.slice\n")
	s.mustRun(t, "systemctl", "start", unit+".socket")
	t.Cleanup(func() {
		s.h.Run(context.Background(), "systemctl", "stop", unit+".socket", unit+".service")
		s.h.Run(context.Background(), "systemctl", "reset-failed", unit+".socket", unit+".service")
	})
	time.Sleep(time.Second) // time enough for a pod that would start with its socket
	if st := s.prop(t, unit+".service", "ActiveState"); st != "inactive" {
		t.Errorf("%s.service is %s before any connection, want inactive", unit, st)
	}
	if ps := s.mustRun(t, "ps", "-eo", "pid,args"); strings.Contains(ps, "qemu-system") {
		t.Errorf("qemu runs before any connection:\n%s", ps)
	}

	// bash's /dev/tcp is the only client in the host's minbase root.
	get := `exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /%s HTTP/1.0\r\n\r\n' "$1" >&3 && cat <&3`
	start := time.Now()
	out := s.mustRun(t, "timeout", "100", "bash", "-c", get, "bash", "first")
	t.Logf("first connection answered after %v (the VM's boot): %q", time.Since(start).Round(time.Millisecond), findLine(out, "hello"))
	mustContain(t, out, "200 OK", "hello from probe")
	start = time.Now()
	out = s.mustRun(t, "timeout", "30", "bash", "-c", get, "bash", "second")
	t.Logf("second connection answered after %v: %q", time.Since(start).Round(time.Millisecond), findLine(out, "hello"))
	mustContain(t, out, "200 OK", "hello from probe")
	if st := s.prop(t, unit+".service", "ActiveState"); st != "active" {
		t.Errorf("%s.service is %s while the pod serves, want active", unit, st)
	}

	b, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(b))
	var log string
	waitFor(t, "both requests in the guest's journal", 30*time.Second, func() bool {
		log = s.mustRun(t, "journalctl", "-M", "skiff-"+uuid, "-t", "probe-socket", "-o", "cat", "--no-pager")
		return strings.Contains(log, "SERVED=GET /second")
	})
	mustContain(t, log, "LISTENERS=1", "SERVED=GET /first FROM=127.0.0.1:", "SERVED=GET /second FROM=127.0.0.1:")
	s.mustRun(t, "systemctl", "stop", unit+".socket", unit+".service")
	mustNotContain(t, s.mustRun(t, "journalctl", "-u", unit+".service", "-o", "cat", "--no-pager"), "stage1-kvm run: error:", "stage1-kvm run: warning:")
	s.checkGone(t, uuid)
}

// testKVMDatagramSocketRefused: a datagram socket that an app's udp port
// asks for cannot be forwarded into the guest: the pod fails at once, with
// one line naming the socket, and no VM starts.
func (s *sysHost) testKVMDatagramSocketRefused(t *testing.T) {
	const unit = "skiff-kvm-dgram"
	exec := strings.Join(s.skiff("--insecure-options=image", "run", "--stage1=kvm", "--net=none", s.socketACI, "--", "-listen-fds"), " ")
	s.writeUnit(t, unit+".socket", "[Socket]\nListenDatagram=127.0.0.1:8053\n")
	s.writeUnit(t, unit+".service", "[Service]\nExecStart="+exec+"\nKillMode=mixed\nDelegate=yes\nSlice=machine.slice\n")
	s.mustRun(t, "systemctl", "start", unit+".socket")
	t.Cleanup(func() {
		s.h.Run(context.Background(), "systemctl", "stop", unit+".socket", unit+".service")
		s.h.Run(context.Background(), "systemctl", "reset-failed", unit+".socket", unit+".service")
	})
	// A datagram starts the service.
	s.mustRun(t, "timeout", "10", "bash", "-c", `echo query >/dev/udp/127.0.0.1/8053`)
	// The datagram stays queued, so the socket starts the service again
	// after each failure (until its trigger limit): a read may fall in a
	// new start, where ExecMainStatus is 0. Wait for a failed run's 254.
	waitFor(t, unit+".service to fail with ExecMainStatus=254", time.Minute, func() bool {
		return s.prop(t, unit+".service", "ActiveState") == "failed" && s.prop(t, unit+".service", "ExecMainStatus") == "254"
	})
	mustContain(t, s.mustRun(t, "journalctl", "-u", unit+".service", "-o", "cat", "--no-pager"),
		"socket activation of ListenDatagram=127.0.0.1:8053 (app probe-socket): usage: stage1-kvm forwards only stream (TCP) sockets into the guest")
	if ps := s.mustRun(t, "ps", "-eo", "pid,args"); strings.Contains(ps, "qemu-system") {
		t.Errorf("qemu started for a refused pod:\n%s", ps)
	}
}

// writeUnit writes a unit file into the host's /run/systemd/system and
// reloads systemd.
func (s *sysHost) writeUnit(t *testing.T, name, content string) {
	t.Helper()
	s.mustRun(t, "sh", "-c", `printf '%s' "$1" >/run/systemd/system/"$2"`, "sh", content, name)
	s.mustRun(t, "systemctl", "daemon-reload")
}

// findLine returns the first line of text containing substr, trimmed, or "".
func findLine(text, substr string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
