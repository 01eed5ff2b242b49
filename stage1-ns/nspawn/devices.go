package nspawn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
)

// defaultDevices is what a pod may use of the host's devices (docs/stage1-ns.md):
// the pseudo devices, terminals and /dev/net/tun, as Docker's default list
// and nspawn's own; mknod of any node is allowed (nspawn and the pod's
// systemd make their /dev), opening one that is not listed is not.
var defaultDevices = []string{
	"c *:* m", "b *:* m",
	"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", // null zero full random urandom
	"c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", // tty console ptmx pts
	"c 10:200 rwm", // net/tun
}

// setupDevices creates the pod's cgroup in the v1 devices hierarchy,
// allows defaultDevices and the devices the pod's host volumes name,
// and moves the caller (and so nspawn and the whole pod) into it; the
// returned function moves the caller back. nspawn run with --keep-unit
// sets no device policy of its own, and the pod's systemd cannot (the v1
// hierarchies are read-only in the pod). --insecure-options=paths, a host
// without the hierarchy, or one where it is read-only (inside a
// container), leave devices alone; the last says so.
func setupDevices(log *slog.Logger, uuid string, pm *schema.PodManifest) (leave func(), err error) {
	leave = func() {}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "devices", "devices.allow")); err != nil || appspec.Insecure(pm, "paths") {
		return leave, nil
	}
	rules := append([]string{}, defaultDevices...)
	for _, v := range pm.Volumes {
		if v.Kind != "host" {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(v.Source, &st) != nil {
			continue // the bind fails later, with the reason
		}
		kind := ""
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			kind = "c"
		case unix.S_IFBLK:
			kind = "b"
		default:
			continue
		}
		access := "rw"
		if v.ReadOnly != nil && *v.ReadOnly {
			access = "r"
		}
		rules = append(rules, fmt.Sprintf("%s %d:%d %s", kind, unix.Major(st.Rdev), unix.Minor(st.Rdev), access))
	}
	origin, err := ownCgroups()
	if err != nil {
		return leave, err
	}
	dir := podCgroup("devices", uuid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			log.Warn("no device cgroup for the pod: the devices hierarchy is read-only", "err", err)
			return leave, nil
		}
		return leave, fmt.Errorf("create devices cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices.deny"), []byte("a"), 0); err != nil {
		return leave, fmt.Errorf("restrict pod devices: %w", err)
	}
	for _, r := range rules {
		if err := os.WriteFile(filepath.Join(dir, "devices.allow"), []byte(r), 0); err != nil {
			return leave, fmt.Errorf("allow pod device %q: %w", r, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0"), 0); err != nil {
		return leave, fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return func() {
		os.WriteFile(filepath.Join(cgroupRoot, "devices", origin["devices"], "cgroup.procs"), []byte("0"), 0)
	}, nil
}
