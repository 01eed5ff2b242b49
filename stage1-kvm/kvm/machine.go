package kvm

import (
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/godbus/dbus/v5"

	"github.com/skiffpod/skiff/pkg/pod"
)

// register registers the pod with systemd-machined as skiff-<uuid> when
// the host runs one, so that machinectl lists it and journalctl -M reads
// its journal. machined opens a container's root through its leader's
// /proc/PID/root: the leader is qemu, chrooted into the stage1 rootfs,
// whose /var/log/journal/<machine-id> is where the guest's journald
// writes. Hence class "container": machined opens no root for a "vm".
func register(log *slog.Logger, uuid string, leader int) {
	if _, err := os.Stat("/run/systemd/machines"); err != nil {
		log.Debug("machined not running: pod not registered", "err", err)
		return
	}
	root, err := filepath.Abs(pod.Stage1Rootfs)
	if err == nil {
		err = registerMachine(registerArgs(uuid, leader, root))
	}
	if err != nil {
		log.Debug("machined unreachable: pod not registered", "err", err)
	}
}

// registerArgs are RegisterMachine's arguments: name, id, service, class,
// leader and root directory.
func registerArgs(uuid string, leader int, root string) []any {
	id, _ := hex.DecodeString(pod.MachineID(uuid))
	return []any{pod.MachineName(uuid), id, "skiff", "container", uint32(leader), root}
}

func registerMachine(args []any) error {
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Object("org.freedesktop.machine1", "/org/freedesktop/machine1").
		Call("org.freedesktop.machine1.Manager.RegisterMachine", 0, args...).Err
}
