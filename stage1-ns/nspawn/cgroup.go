package nspawn

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/cglimit"
	"github.com/skiffpod/skiff/pkg/podunit"
)

// cgroupRoot is where the host mounts its cgroup hierarchies.
var cgroupRoot = "/sys/fs/cgroup"

// On a cgroup v1 (or hybrid) host the controllers belong to the v1
// hierarchies, which nspawn mounts read-only in the container, so the
// pod's systemd cannot apply MemoryMax=/CPUQuota=. run therefore creates,
// on the host, skiff/<uuid> in the memory and cpu hierarchies, moves itself
// (and so nspawn and the whole pod) there, and one child cgroup per app
// with a limit. That child is bind-mounted into the stage1 root at
// /skiff/cgroup/<app>/<controller>, and stage2 (run --cgroups) moves the
// app into it first. Thanks to nspawn's cgroup namespace the
// app sees its own limit at /sys/fs/cgroup/memory/<app>/.
var v1Controllers = []string{"memory", "cpu"}

// cfsPeriod is the CFS period, in µs, that CPU limits are expressed against.
const cfsPeriod = 100000

// cgroupV1 reports whether the host's memory controller is on cgroup v1.
func cgroupV1() bool {
	_, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.limit_in_bytes"))
	return err == nil
}

func podCgroup(ctrl, uuid string) string { return filepath.Join(cgroupRoot, ctrl, "skiff", uuid) }

// podCgroupMount is where, in an app sandbox (mutable), run binds the
// pod's own v1 cgroup of each controller (<podCgroupMount>/<ctrl>): app-add
// makes an added app's cgroups below it (addAppCgroups), which nspawn's
// read-only /sys/fs/cgroup would not let the pod join.
const podCgroupMount = podunit.CgroupDir + "/.pod"

// appLimits are app a's limits in cgroup terms.
func appLimits(a podunit.App) cglimit.Limits {
	return cglimit.Limits{Memory: a.Memory, CPUQuota: a.CPU * cfsPeriod / 1000, CPUPeriod: cfsPeriod, CPUShares: a.CPUShares}
}

// setupCgroups creates the pod's v1 cgroups, joins them and returns the
// nspawn --bind arguments that hand each limited app its cgroup (and, for
// a mutable pod, the pod's own at podCgroupMount), and a function that
// moves the caller back where it was, so that the pod's cgroups can be
// removed once the pod has ended.
func setupCgroups(uuid string, apps []podunit.App, mutable bool) (binds []string, leave func(), err error) {
	leave = func() {}
	if !cgroupV1() {
		return nil, leave, nil
	}
	origin, err := ownCgroups()
	if err != nil {
		return nil, leave, err
	}
	leave = func() {
		for _, ctrl := range v1Controllers {
			os.WriteFile(filepath.Join(cgroupRoot, ctrl, origin[ctrl], "cgroup.procs"), []byte("0"), 0)
		}
	}
	for _, ctrl := range v1Controllers {
		pod := podCgroup(ctrl, uuid)
		if err := os.MkdirAll(pod, 0o755); err != nil {
			return nil, leave, fmt.Errorf("create cgroup: %w", err)
		}
		for _, a := range apps {
			if !(ctrl == "memory" && a.Memory > 0 || ctrl == "cpu" && (a.CPU > 0 || a.CPUShares > 0)) {
				continue
			}
			dir := filepath.Join(pod, a.Name)
			if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
				return nil, leave, fmt.Errorf("create cgroup: %w", err)
			}
			if err := cglimit.WriteV1(dir, ctrl, appLimits(a)); err != nil {
				return nil, leave, fmt.Errorf("limit app %s: %w", a.Name, err)
			}
			binds = append(binds, "--bind="+escapeBind(dir)+":"+podunit.CgroupDir+"/"+a.Name+"/"+ctrl)
		}
		if mutable {
			binds = append(binds, "--bind="+escapeBind(pod)+":"+podCgroupMount+"/"+ctrl)
		}
		if err := os.WriteFile(filepath.Join(pod, "cgroup.procs"), []byte("0"), 0); err != nil {
			return nil, leave, fmt.Errorf("join cgroup %s: %w", pod, err)
		}
	}
	return binds, leave, nil
}

// setupPids creates the pod's cgroup in the v1 pids hierarchy with the
// pod's task limit and moves the caller (and so nspawn and the whole pod)
// into it; the returned function moves the caller back. Where the
// hierarchy is read-only (inside a container, as on the systemd test
// host) it changes nothing and says so: the pod's systemd then applies the
// limit to the apps if it owns the controller (podunit's TasksMax=).
func setupPids(log *slog.Logger, uuid string, limit int64) (leave func(), err error) {
	leave = func() {}
	if _, err := os.Stat(filepath.Join(cgroupRoot, "pids", "cgroup.procs")); err != nil || limit == 0 {
		return leave, nil // no v1 pids hierarchy (the pod's systemd limits), or no limit
	}
	origin, err := ownCgroups()
	if err != nil {
		return leave, err
	}
	dir := podCgroup("pids", uuid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			log.Warn("pids limit left to the pod's systemd: the pids hierarchy is read-only", "err", err)
			return leave, nil
		}
		return leave, fmt.Errorf("create pids cgroup: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pids.max"), []byte(strconv.FormatInt(limit, 10)), 0); err != nil {
		return leave, fmt.Errorf("limit pod tasks: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0"), 0); err != nil {
		return leave, fmt.Errorf("join cgroup %s: %w", dir, err)
	}
	return func() {
		os.WriteFile(filepath.Join(cgroupRoot, "pids", origin["pids"], "cgroup.procs"), []byte("0"), 0)
	}, nil
}

// trackingHierarchies returns the host's hierarchies that track
// processes without controllers, relative to cgroupRoot: "systemd" (v1
// name=systemd) and "unified" (v2) on a v1 or hybrid host, "" where
// cgroupRoot is itself the v2 hierarchy. Missing ones are left out.
func trackingHierarchies() []string {
	var st unix.Statfs_t
	if unix.Statfs(cgroupRoot, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return []string{""}
	}
	var hs []string
	for _, h := range []string{"systemd", "unified"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, h, "cgroup.procs")); err == nil {
			hs = append(hs, h)
		}
	}
	return hs
}

// setupTracking gives the pod cgroups of its own, skiff/<uuid>, in the
// hierarchies that track processes, and moves the caller (and so nspawn
// and the whole pod) there; the returned function moves the caller back.
// Without systemd as the host's PID 1, nspawn must run with --keep-unit
// and puts the pod's systemd below its own cgroup: without this, every pod
// would share one (/payload) and each pod's systemd would create, join
// and remove the same <app>.service cgroups as the others, so that an app
// or its ExecStopPost hook of one pod sometimes failed with 219/CGROUP
// when another pod's systemd had just removed that cgroup (the pod then
// never started its app, or never ended). It also lets gc find and kill
// what is left of a pod whose nspawn was killed (killPod). Where a
// hierarchy is read-only it changes nothing there and says so.
func setupTracking(log *slog.Logger, uuid string) (leave func(), err error) {
	origin, err := ownCgroups()
	if err != nil {
		return func() {}, err
	}
	var back []func()
	leave = func() {
		for _, f := range back {
			f()
		}
	}
	for _, h := range trackingHierarchies() {
		dir := podCgroup(h, uuid)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			if errors.Is(err, unix.EROFS) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				log.Warn("the pod shares its parent's cgroup: the hierarchy is read-only", "err", err)
				continue
			}
			return leave, fmt.Errorf("create cgroup: %w", err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("0"), 0); err != nil {
			return leave, fmt.Errorf("join cgroup %s: %w", dir, err)
		}
		key := "name=systemd"
		if h != "systemd" {
			key = ""
		}
		from := filepath.Join(cgroupRoot, h, origin[key], "cgroup.procs")
		back = append(back, func() { os.WriteFile(from, []byte("0"), 0) })
	}
	return leave, nil
}

// killPod kills whatever is left in the pod's cgroups in the tracking
// hierarchies, the caller excepted, and waits until they are empty: the
// pod's init and apps after its nspawn (or run and nspawn) was killed.
func killPod(uuid string) error {
	self := os.Getpid()
	for _, h := range trackingHierarchies() {
		dir := podCgroup(h, uuid)
		for try := 0; ; try++ {
			pids, err := procsBelow(dir)
			if err != nil {
				return err
			}
			pids = slices.DeleteFunc(pids, func(p int) bool { return p == self })
			if len(pids) == 0 {
				break
			}
			if try == 500 {
				return fmt.Errorf("kill pod: %d processes left in %s", len(pids), dir)
			}
			for _, p := range pids {
				unix.Kill(p, unix.SIGKILL)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// procsBelow lists the processes of cgroup dir and its descendants; a
// missing dir has none.
func procsBelow(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil || !d.IsDir() {
			return err
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil && n > 0 {
				pids = append(pids, n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list pod processes: %w", err)
	}
	return pids, nil
}

// ownCgroups returns the caller's v1 cgroup path for each controller.
func ownCgroups() (map[string]string, error) {
	return procCgroups("self")
}

// procCgroups parses /proc/<pid>/cgroup into controller (or name=, or ""
// for the unified hierarchy) → path; co-mounted controllers appear under
// each of their names.
func procCgroups(pid string) (map[string]string, error) {
	b, err := os.ReadFile("/proc/" + pid + "/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read cgroups: %w", err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			out[c] = f[2]
		}
	}
	return out, nil
}

// removeCgroups removes the pod's cgroups, with what nspawn and the pod's
// systemd made below them; they must be empty, which they are once the
// pod's init has died (killPod). Missing ones are fine.
func removeCgroups(uuid string) error {
	var errs []error
	for _, ctrl := range append(append([]string{}, v1Controllers...), append(trackingHierarchies(), "pids", "devices")...) {
		errs = append(errs, removeTree(podCgroup(ctrl, uuid)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroups: %w", err)
	}
	return nil
}

// removeTree removes cgroup dir and the cgroups below it, deepest first.
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeTree(filepath.Join(dir, e.Name())))
		}
	}
	return errors.Join(append(errs, ignoreNotExist(os.Remove(dir)))...)
}

func ignoreNotExist(err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// addAppCgroups gives app a, added to the running sandbox uuid whose
// stage1 rootfs is root, cgroups of its own below the pod's in the v1
// memory and cpu hierarchies, with its limits, and links them where its
// unit's stage2 joins them (/skiff/cgroup/<app>/<ctrl> ->
// podCgroupMount/<ctrl>/<app>). Cgroups of its own even without limits,
// so that limits can be set while it runs (UpdateContainerResources).
// ErrNoPodCgroups when the pod booted without podCgroupMount.
func addAppCgroups(root *os.Root, uuid string, a podunit.App) error {
	for _, ctrl := range v1Controllers {
		if _, err := root.Stat(strings.TrimPrefix(podCgroupMount+"/"+ctrl, "/")); err != nil {
			return fmt.Errorf("add app %s: %w", a.Name, ErrNoPodCgroups)
		}
		dir := filepath.Join(podCgroup(ctrl, uuid), a.Name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("add app %s: create cgroup: %w", a.Name, err)
		}
		if err := cglimit.WriteV1(dir, ctrl, appLimits(a)); err != nil {
			return fmt.Errorf("add app %s: %w", a.Name, err)
		}
		link := strings.TrimPrefix(podunit.CgroupDir+"/"+a.Name+"/"+ctrl, "/")
		if err := root.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("add app %s: %w", a.Name, err)
		}
		if err := root.Symlink(podCgroupMount+"/"+ctrl+"/"+a.Name, link); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("add app %s: %w", a.Name, err)
		}
	}
	return nil
}

// removeAppCgroups undoes addAppCgroups (of a stopped app: its cgroups
// are empty); missing ones are fine.
func removeAppCgroups(root *os.Root, uuid, app string) error {
	errs := []error{ignoreNotExist(root.RemoveAll(strings.TrimPrefix(podunit.CgroupDir+"/"+app, "/")))}
	for _, ctrl := range append([]string{"devices"}, v1Controllers...) {
		errs = append(errs, ignoreNotExist(os.Remove(filepath.Join(podCgroup(ctrl, uuid), app))))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove cgroups of %s: %w", app, err)
	}
	return nil
}

// escapeBind escapes a path for nspawn's colon-separated --bind syntax.
func escapeBind(p string) string {
	return strings.NewReplacer(`\`, `\\`, ":", `\:`).Replace(p)
}
