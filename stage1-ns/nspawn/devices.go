package nspawn

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/appspec"
	"github.com/skiffpod/skiff/pkg/pod"
	"github.com/skiffpod/skiff/pkg/podunit"
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
// returned function moves the caller back. In a privileged sandbox (the
// pod manifest's pod.AnnotationPrivileged) the pod's cgroup allows every
// device and those rules are its child ".pod"'s, which the caller joins;
// the pod's cgroup is bound at podCgroupMount/devices (the returned
// binds), where app-add gives an app with the host's devices a cgroup of
// its own below it (addAppDevices). nspawn run with --keep-unit
// sets no device policy of its own, and the pod's systemd cannot (the v1
// hierarchies are read-only in the pod). --insecure-options=paths, a host
// without the hierarchy, or one where it is read-only (inside a
// container), leave devices alone; the last says so.
func setupDevices(log *slog.Logger, uuid string, pm *schema.PodManifest) (binds []string, leave func(), err error) {
	leave = func() {}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "devices", "devices.allow")); err != nil || appspec.Insecure(pm, "paths") {
		return nil, leave, nil
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
		return nil, leave, err
	}
	dir := podCgroup("devices", uuid)
	if v, _ := pm.Annotations.Get(pod.AnnotationPrivileged); v == "true" {
		binds = []string{"--bind=" + escapeBind(dir) + ":" + podCgroupMount + "/devices"}
		dir = filepath.Join(dir, ".pod") // no app is named so
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			log.Warn("no device cgroup for the pod: the devices hierarchy is read-only", "err", err)
			return nil, leave, nil
		}
		return nil, leave, fmt.Errorf("create devices cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "devices.deny"), []byte("a"), 0); err != nil {
		return nil, leave, fmt.Errorf("restrict pod devices: %w", err)
	}
	for _, r := range rules {
		if err := os.WriteFile(filepath.Join(dir, "devices.allow"), []byte(r), 0); err != nil {
			return nil, leave, fmt.Errorf("allow pod device %q: %w", r, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0"), 0); err != nil {
		return nil, leave, fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return binds, func() {
		os.WriteFile(filepath.Join(cgroupRoot, "devices", origin["devices"], "cgroup.procs"), []byte("0"), 0)
	}, nil
}

// addAppDevices gives app a, added to the running privileged sandbox
// uuid whose stage1 rootfs is root, a devices cgroup of its own that
// allows every device (a child of the pod's, which does: setupDevices)
// and links it where its unit's stage2 joins it. Nothing for an app
// without the host's devices, or a pod without its devices cgroup bound.
func addAppDevices(root *os.Root, uuid string, a podunit.App) error {
	if !a.HostDevices {
		return nil
	}
	if _, err := root.Stat(strings.TrimPrefix(podCgroupMount+"/devices", "/")); err != nil {
		return fmt.Errorf("add app %s: the host's devices: the pod has no devices cgroup of its own: %w", a.Name, err)
	}
	dir := filepath.Join(podCgroup("devices", uuid), a.Name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("add app %s: create devices cgroup: %w", a.Name, err)
	}
	link := strings.TrimPrefix(podunit.CgroupDir+"/"+a.Name+"/devices", "/")
	if err := root.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return fmt.Errorf("add app %s: %w", a.Name, err)
	}
	if err := root.Symlink(podCgroupMount+"/devices/"+a.Name, link); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("add app %s: %w", a.Name, err)
	}
	return nil
}
