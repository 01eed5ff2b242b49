package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pods is the store and rootfs shared by the stage1-ns and stage1-kvm
// sections: a store holding busybox, and busybox's rootfs extracted for
// the peers.
type pods struct {
	dir    string
	rootfs string
	skiff  func(args ...string) []string // skiff's argv with the global flags
}

func setupPods(ctx context.Context, cfg config) (pods, error) {
	dir := filepath.Join(cfg.scratch, "pods")
	p := pods{dir: dir, rootfs: filepath.Join(dir, "rootfs")}
	p.skiff = func(args ...string) []string {
		return append([]string{"--dir=" + filepath.Join(dir, "store"), "--local-config=" + filepath.Join(dir, "config"),
			"--insecure-options=image"}, args...)
	}
	if _, err := os.Stat(p.rootfs); err == nil {
		return p, nil
	}
	if _, err := output(ctx, nil, cfg.skiff, p.skiff("fetch", filepath.Join(cfg.images, "busybox.aci"))...); err != nil {
		return p, err
	}
	_, err := output(ctx, nil, cfg.skiff, p.skiff("image", "extract", "--rootfs-only", "skiff.local/busybox", p.rootfs)...)
	return p, err
}

// gc collects the exited pods, unmounting their overlays (untimed).
func (p pods) gc(ctx context.Context, cfg config) error {
	_, err := output(ctx, nil, cfg.skiff, p.skiff("gc", "--grace-period=0")...)
	return err
}

func benchNS(ctx context.Context, cfg config) error {
	if err := needTools(map[string]string{"systemd-nspawn": "systemd-container", "crun": "crun", "runc": "runc", "strace": "strace", "podman": "podman"}); err != nil {
		return err
	}
	p, err := setupPods(ctx, cfg)
	if err != nil {
		return err
	}
	// Issue 16's rows: no network for skiff nor podman (the network's
	// cost is the net section's row), podman with runc and the rootfs
	// skiff runs, imported.
	if err := podmanImport(ctx, p.rootfs, podmanBusybox); err != nil {
		return err
	}
	defer output(context.Background(), nil, "podman", "rmi", "-f", podmanBusybox)
	podmanRun := append(append([]string{"run", "--rm"}, podmanFlags...), "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096",
		"--network=none", podmanBusybox, "/bin/true")
	noNet := p.skiff("run", "--net=none", filepath.Join(cfg.images, "busybox.aci"), "--exec=/bin/true")
	skiffRun := p.skiff("run", filepath.Join(cfg.images, "busybox.aci"), "--exec=/bin/true")
	hostNet := p.skiff("run", "--net=host", filepath.Join(cfg.images, "busybox.aci"), "--exec=/bin/true")
	byName := p.skiff("run", "skiff.local/busybox", "--exec=/bin/true")
	privateUsers := p.skiff("run", "--private-users", filepath.Join(cfg.images, "busybox.aci"), "--exec=/bin/true")
	// Warm-up: imports and renders the stage1 image; podman's first run
	// sets up its storage.
	if _, err := output(ctx, nil, cfg.skiff, skiffRun...); err != nil {
		return err
	}
	if _, err := output(ctx, nil, "podman", podmanRun...); err != nil {
		return err
	}
	bundles := map[string]string{}
	for _, rt := range []string{"crun", "runc"} {
		if bundles[rt], err = ociBundle(ctx, p, rt); err != nil {
			return err
		}
	}
	cg, err := newCgroupV1Thread()
	if err != nil {
		return err
	}
	defer cg.close()
	id := 0
	oci := func(rt string) func() (time.Duration, error) {
		return func() (d time.Duration, err error) {
			id++
			cmd, cancel := command(ctx, nil, rt, "run", "--bundle", bundles[rt], "skiff-bench-"+strconv.Itoa(id))
			defer cancel()
			cg.do(func() { d, err = timed(cmd) })
			return d, err
		}
	}
	cs := []contender{
		{noNetRow, func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.skiff, noNet...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		// The default network's setup is in the time; its teardown (gc) is not.
		{defaultRow, func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.skiff, skiffRun...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		// A uid range allocated, the trees idmapped, nspawn in a user namespace.
		{privateUsersRow, func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.skiff, privateUsers...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		{"skiff run --net=host", func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.skiff, hostNet...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		// By name, the image comes from the store; by path, skiff first
		// reads the whole file again to learn its image ID.
		{"skiff run skiff.local/busybox", func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.skiff, byName...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}},
		{"systemd-nspawn", func() (time.Duration, error) {
			return timeCmd(ctx, nil, "systemd-nspawn", "--register=no", "--keep-unit", "-q", "-D", p.rootfs, "/bin/true")
		}},
		// --rm: the container's removal is in podman's time.
		{podmanRow, func() (time.Duration, error) { return timeCmd(ctx, nil, "podman", podmanRun...) }},
		{"crun run", oci("crun")},
		{"runc run", oci("runc")},
		{"unshare+chroot (floor)", func() (time.Duration, error) {
			cmd, cancel := command(ctx, nil, "/bin/true")
			defer cancel()
			cmd.SysProcAttr = &syscall.SysProcAttr{
				Cloneflags: unix.CLONE_NEWPID | unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET,
				Chroot:     p.rootfs,
			}
			return timed(cmd)
		}},
	}
	if cfg.base != "" {
		if _, err := output(ctx, nil, cfg.base, noNet...); err != nil {
			return err
		}
		cs = append(cs, contender{noNetRow + " (-base)", func() (time.Duration, error) {
			d, err := timeCmd(ctx, nil, cfg.base, noNet...)
			if err != nil {
				return d, err
			}
			return d, p.gc(ctx, cfg)
		}})
	}
	runs, err := interleave(cfg.n, cs)
	if err != nil {
		return err
	}
	// The reference is bare nspawn, wherever rows were added above it.
	ref := slices.IndexFunc(cs, func(c contender) bool { return c.name == "systemd-nspawn" })
	sums := printTable(os.Stdout, "stage1-ns: /bin/true in busybox", cs, runs, ref)
	pm := slices.IndexFunc(cs, func(c contender) bool { return c.name == podmanRow })
	target(os.Stdout, "skiff run --net=none ≤ 2.0× bare systemd-nspawn", ratio(sums[0].median, sums[ref].median), 2.0)
	target(os.Stdout, "skiff run --net=none ≤ 0.5× podman run --rm --network=none", ratio(sums[0].median, sums[pm].median), 0.5)
	def := slices.IndexFunc(cs, func(c contender) bool { return c.name == defaultRow })
	pu := slices.IndexFunc(cs, func(c contender) bool { return c.name == privateUsersRow })
	extra := sums[pu].median - sums[def].median
	verdict := "MET"
	if extra > privateUsersTarget {
		verdict = "NOT MET"
	}
	fmt.Printf("target skiff run --private-users ≤ skiff run + %s: %s (%+.1f ms)\n", ms(privateUsersTarget), verdict, float64(extra)/1e6)

	evs, err := traceRun(ctx, p.dir, nil, cfg.skiff, noNet...)
	if err != nil {
		return err
	}
	printBreakdown(os.Stdout, "stage1-ns breakdown of one traced skiff run (execve trace; slower than the median):", evs, nsPhases)
	return p.gc(ctx, cfg)
}

const (
	noNetRow           = "skiff run --net=none"
	defaultRow         = "skiff run (stage1-ns, --net=default)"
	podmanRow          = "podman run --rm --network=none (runc)"
	podmanBusybox      = "localhost/skiff-bench-busybox"
	privateUsersRow    = "skiff run --private-users"
	privateUsersTarget = 10 * time.Millisecond
)

// nsPhases split a traced stage1-ns run at the moments each stage starts.
var nsPhases = []phase{
	{"stage0: fetch from cache, prepare pod, exec stage1", regexp.MustCompile(`^exec .*/skiff/run `)},
	{"stage1-ns run: write units, exec nspawn", regexp.MustCompile(`^exec \S*systemd-nspawn `)},
	{"systemd-nspawn: namespaces, mounts, exec systemd", regexp.MustCompile(`^exec /usr/lib/systemd/systemd `)},
	{"systemd boot in the pod, to stage2's exec", regexp.MustCompile(`^exec /skiff/stage2 `)},
	{"stage2: app's root, user, caps; exec the app", regexp.MustCompile(`^exec /bin/true `)},
	{"the app (/bin/true)", regexp.MustCompile(`^exit /bin/true$`)},
	{"shutdown: systemd, nspawn, stage1 exit", regexp.MustCompile(`^exit .*/skiff/run$`)},
}

// ociBundle makes a bundle for rt (crun or runc) from its own default spec,
// running /bin/true without a terminal on the shared rootfs, read-only.
func ociBundle(ctx context.Context, p pods, rt string) (string, error) {
	dir := filepath.Join(p.dir, "bundle-"+rt)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cfgFile := filepath.Join(dir, "config.json")
	os.Remove(cfgFile) // `spec` refuses to overwrite
	cmd, cancel := command(ctx, nil, rt, "spec")
	defer cancel()
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s spec: %w\n%s", rt, err, out)
	}
	b, err := os.ReadFile(cfgFile)
	if err != nil {
		return "", err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", fmt.Errorf("%s spec: %w", rt, err)
	}
	proc, ok := spec["process"].(map[string]any)
	if !ok {
		return "", fmt.Errorf("%s spec: no process object", rt)
	}
	proc["args"], proc["terminal"] = []string{"/bin/true"}, false
	spec["root"] = map[string]any{"path": p.rootfs, "readonly": true}
	if b, err = json.MarshalIndent(spec, "", "\t"); err != nil {
		return "", err
	}
	return dir, os.WriteFile(cfgFile, b, 0o644)
}

// cgroupV1Thread runs functions on one OS thread whose mount namespace is
// private and lacks /sys/fs/cgroup/unified: crun 1.8.1 refuses this host's
// mixed cgroup v1/v2 layout, and runc is measured the same way for
// fairness. Processes started there inherit the namespace; the rest of the
// harness (skiff, nspawn) keeps the host's.
type cgroupV1Thread struct{ work chan func() }

func newCgroupV1Thread() (*cgroupV1Thread, error) {
	t := &cgroupV1Thread{work: make(chan func())}
	errc := make(chan error)
	go func() {
		// Never unlocked: the thread exits with the goroutine instead of
		// going back to the scheduler in the private namespace.
		runtime.LockOSThread()
		err := unix.Unshare(unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		if err == nil {
			if err = unix.Unmount("/sys/fs/cgroup/unified", unix.MNT_DETACH); err == unix.EINVAL {
				err = nil // not a mount point here: nothing to hide
			}
		}
		if err != nil {
			errc <- fmt.Errorf("private mount namespace for crun and runc: %w", err)
			return
		}
		errc <- nil
		for f := range t.work {
			f()
		}
	}()
	return t, <-errc
}

func (t *cgroupV1Thread) do(f func()) {
	done := make(chan struct{})
	t.work <- func() { f(); close(done) }
	<-done
}

func (t *cgroupV1Thread) close() { close(t.work) }
