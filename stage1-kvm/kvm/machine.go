package kvm

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
	"github.com/skiffpod/skiff/pkg/stage1kit"
)

// machine is the pod's registration with systemd-machined, as skiff-<uuid>,
// and its leader process.
//
// machined opens a container's root through its leader's /proc/PID/root
// (journalctl -M, machinectl), so the leader cannot be qemu, whose root is
// the host's / (qemu's -chroot breaks its 9p server, which goes through
// /proc/self/fd). The leader is run's binary again, as the "leader"
// entrypoint, chrooted into the stage1 rootfs, where the guest's journald
// writes /var/log/journal/<machine-id>; it lives until run closes its stdin.
// Hence class "container": machined opens no root for a "vm".
type machine struct {
	name   string
	leader *exec.Cmd
	stdin  io.Closer
}

// The machined manager's object.
const (
	machinedDest = "org.freedesktop.machine1"
	machinedPath = "/org/freedesktop/machine1"
	machinedIfc  = "org.freedesktop.machine1.Manager"
)

// register registers the pod with systemd-machined when the host runs one,
// and returns nil otherwise or when that fails (a warning: the pod runs
// anyway). Under a service (systemd-run, a unit file) the service is the
// machine's unit, as nspawn's --keep-unit: RegisterMachine, and machinectl
// terminate stops the service. Elsewhere machined makes a scope,
// machine-skiff\x2d<uuid>.scope, for the leader and qemu (CreateMachine,
// as nspawn without --keep-unit): terminating it does not hit the caller's
// session.
func register(log *slog.Logger, uuid string, qemu int) *machine {
	if !stage1kit.Machined() {
		log.Debug("no systemd with a system bus on the host: pod not registered with machined")
		return nil
	}
	m, err := startMachine(uuid, qemu)
	if err != nil {
		log.Warn("register pod with machined", "err", err)
		return nil
	}
	log.Debug("registered with machined", "machine", m.name, "leader", m.leader.Process.Pid)
	return m
}

func startMachine(uuid string, qemu int) (*machine, error) {
	root, err := filepath.Abs(pod.Stage1Rootfs)
	if err != nil {
		return nil, err
	}
	m := &machine{name: pod.MachineName(uuid)}
	if err := m.startLeader(root); err != nil {
		return nil, err
	}
	conn, err := dbus.ConnectSystemBus()
	if err == nil {
		defer conn.Close()
		method, args := "RegisterMachine", registerArgs(uuid, m.leader.Process.Pid, root)
		if !stage1kit.InService() {
			method, args = "CreateMachine", append(args, scopeProperties(qemu))
		}
		err = conn.Object(machinedDest, machinedPath).Call(machinedIfc+"."+method, 0, args...).Err
		if err != nil {
			err = fmt.Errorf("%s: %w", method, err)
		}
	}
	if err != nil {
		m.stopLeader()
		return nil, err
	}
	return m, nil
}

// startLeader starts the leader and waits until it is chrooted into root.
func (m *machine) startLeader(root string) error {
	// run's own binary, from the store's read-only tree: nothing the
	// guest can write is executed on the host.
	cmd := &exec.Cmd{Path: "/proc/self/exe", Args: []string{"leader"}, Dir: root, Stderr: os.Stderr,
		// A mount namespace of its own (Go makes its mounts private), for
		// the /proc the leader mounts in root.
		SysProcAttr: &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("start machine leader: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("start machine leader: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start machine leader: %w", err)
	}
	m.leader, m.stdin = cmd, stdin
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		m.stopLeader()
		return fmt.Errorf("start machine leader: %w", err)
	}
	return nil
}

func (m *machine) stopLeader() {
	m.stdin.Close()
	m.leader.Wait()
}

// unregister drops the machine (its unit stays, as after nspawn
// --keep-unit) and ends the leader.
func (m *machine) unregister(log *slog.Logger) {
	if m == nil {
		return
	}
	conn, err := dbus.ConnectSystemBus()
	if err == nil {
		defer conn.Close()
		err = conn.Object(machinedDest, machinedPath).Call(machinedIfc+".UnregisterMachine", 0, m.name).Err
	}
	// The machine may be gone already: its unit was stopped.
	if err != nil {
		log.Debug("unregister pod from machined", "err", err)
	}
	m.stopLeader()
}

// Leader is the "leader" entrypoint, started by run in the stage1 rootfs:
// it chroots there, says so with a line on stdout and lives until its
// stdin ends, when run closes it or dies. SIGINT and SIGTERM are run's to
// handle: the leader ends after the pod. machinectl poweroff signals the
// leader, which passes it on to run as the SIGTERM of a clean stop.
func Leader([]string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM)
	run := os.Getppid()
	poweroff := make(chan os.Signal, 1)
	// machinectl poweroff sends the leader systemd's "power off".
	signal.Notify(poweroff, podunit.SigPoweroff)
	go func() {
		for range poweroff {
			if os.Getppid() == run {
				syscall.Kill(run, syscall.SIGTERM)
			}
		}
	}()
	// Exec'd as /proc/self/exe, it would be "exe" in machinectl status.
	os.WriteFile("/proc/self/comm", []byte("skiff-leader"), 0)
	// machined reads the machine's os-release (machinectl list's OS
	// column) in the leader's root with helpers that need /proc there. It
	// is mounted in the leader's own mount namespace: neither the host
	// nor the guest, which shares this root over 9p, sees it.
	if err := syscall.Mount("proc", "proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		fmt.Fprintln(os.Stderr, "leader: mount /proc:", err)
	}
	if err := syscall.Chroot("."); err != nil {
		fmt.Fprintln(os.Stderr, "leader: chroot:", err)
		return pod.ExitFailure
	}
	if err := os.Chdir("/"); err != nil {
		fmt.Fprintln(os.Stderr, "leader:", err)
		return pod.ExitFailure
	}
	fmt.Println()
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// registerArgs are RegisterMachine's arguments: name, id, service, class,
// leader and root directory; CreateMachine's, without the scope's
// properties.
func registerArgs(uuid string, leader int, root string) []any {
	id, _ := hex.DecodeString(pod.MachineID(uuid))
	return []any{pod.MachineName(uuid), id, "skiff", "container", uint32(leader), root}
}

// scopeProperties put qemu into the machine's scope beside the leader, so
// that machinectl terminate ends the VM.
func scopeProperties(qemu int) []struct {
	Name  string
	Value dbus.Variant
} {
	return []struct {
		Name  string
		Value dbus.Variant
	}{{"PIDs", dbus.MakeVariant([]uint32{uint32(qemu)})}}
}
