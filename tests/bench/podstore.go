package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/skiffpod/skiff/pkg/stage1/stage1test"
)

// benchPodStore times the pod store's everyday commands at scale: `skiff
// list` with cfg.pods pods (half prepared, half exited) and `skiff rm` of
// a prepared pod, each against the target of issue 16; then it reports the
// host memory of one idle stage1-ns pod.
//
// The exited pods are run with the stub stage1 (tests/stub-stage1: a
// chroot, no systemd), which leaves a pod dir just as a stage1-ns run
// does, in a fraction of the time. Every pod's overlays are mounted in a
// private mount namespace of one harness thread, where every skiff of
// this section runs, so that a thousand pods do not fill the host's mount
// table under other processes.
func benchPodStore(ctx context.Context, cfg config) error {
	dir := filepath.Join(cfg.scratch, "podstore")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ns, err := newMountNSThread()
	if err != nil {
		return err
	}
	defer ns.close()
	stub, err := stage1test.Stub(dir)
	if err != nil {
		return err
	}
	busybox := filepath.Join(cfg.images, "busybox.aci")
	skiff := func(store string, args ...string) []string {
		return append([]string{"--dir=" + filepath.Join(dir, store), "--local-config=" + filepath.Join(dir, "config"), "--insecure-options=image"}, args...)
	}
	run := func(args ...string) (out string, err error) {
		ns.do(func() { out, err = output(ctx, nil, cfg.skiff, args...) })
		return strings.TrimSpace(out), err
	}
	timedRun := func(bin string, args ...string) (d time.Duration, err error) {
		ns.do(func() { d, err = timeCmd(ctx, nil, bin, args...) })
		return d, err
	}
	for _, store := range []string{"many", "few"} {
		if _, err := run(skiff(store, "fetch", busybox)...); err != nil {
			return err
		}
	}
	// The pods: in parallel, to spend less of the bench on setting up.
	start := time.Now()
	jobs := make(chan []string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for args := range jobs {
				if _, err := run(args...); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range cfg.pods {
		if i%2 == 0 {
			jobs <- skiff("many", "prepare", "skiff.local/busybox", "--exec=/bin/true")
		} else {
			jobs <- skiff("many", "run", "--net=none", "--stage1="+stub, "skiff.local/busybox", "--exec=/bin/true")
		}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Printf("\npods: %d pods made in %s (half prepared, half exited)\n", cfg.pods, time.Since(start).Round(time.Second))

	// list must show a change made just before it: each run prepares one
	// more pod (untimed), lists, finds it, and removes it (untimed).
	list := func(bin string, format ...string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			uuid, err := run(skiff("many", "prepare", "skiff.local/busybox", "--exec=/bin/true")...)
			if err != nil {
				return 0, err
			}
			var out string
			start := time.Now()
			ns.do(func() {
				out, err = output(ctx, nil, bin, skiff("many", append([]string{"list", "--no-legend"}, format...)...)...)
			})
			d := time.Since(start)
			if err != nil {
				return d, err
			}
			if !strings.Contains(out, uuid[:8]) {
				return d, fmt.Errorf("skiff list does not show pod %s, prepared just before", uuid)
			}
			_, err = run(skiff("many", "rm", uuid)...)
			return d, err
		}
	}
	// rm returns when nothing of the pod remains and nothing is mounted.
	// The pod is prepared by the binary that removes it: what a prepared
	// pod holds (mounts or none) is that build's.
	rm := func(bin, store string) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			var uuid string
			var err error
			ns.do(func() {
				uuid, err = output(ctx, nil, bin, skiff(store, "prepare", "skiff.local/busybox", "--exec=/bin/true")...)
			})
			uuid = strings.TrimSpace(uuid)
			if err != nil {
				return 0, err
			}
			d, err := timedRun(bin, skiff(store, "rm", uuid)...)
			if err != nil {
				return d, err
			}
			return d, ns.podGone(filepath.Join(dir, store), uuid)
		}
	}
	// With -base, the same rows of the other binary follow, interleaved;
	// the targets are read from skiff's.
	var cs []contender
	bins, suffixes := cfg.binaries()
	for i, bin := range bins {
		cs = append(cs,
			contender{fmt.Sprintf("skiff list (%d pods)", cfg.pods) + suffixes[i], list(bin)},
			contender{fmt.Sprintf("skiff list --format=json (%d pods)", cfg.pods) + suffixes[i], list(bin, "--format=json")},
			contender{"skiff rm, prepared pod (store of 1 pod)" + suffixes[i], rm(bin, "few")},
			contender{fmt.Sprintf("skiff rm, prepared pod (store of %d pods)", cfg.pods) + suffixes[i], rm(bin, "many")})
	}
	runs, err := interleave(cfg.n, cs)
	if err != nil {
		return err
	}
	sums := printTable(os.Stdout, "pods: list and rm (each list preceded by a prepare it must show)", cs, runs, 0)
	absTarget(fmt.Sprintf("skiff list with %d pods ≤ 30 ms", cfg.pods), sums[0].median, 30*time.Millisecond)
	absTarget("skiff rm of a prepared pod ≤ 15 ms", sums[2].median, 15*time.Millisecond)
	if _, err := run(skiff("many", "gc", "--grace-period=0", "--expire-prepared=0s")...); err != nil {
		return err
	}
	for i, bin := range bins {
		c := cfg
		c.skiff = bin
		if err := benchPodMemory(ctx, c, suffixes[i]); err != nil {
			return err
		}
	}
	return nil
}

// absTarget prints a target line for an absolute time.
func absTarget(what string, got, limit time.Duration) {
	verdict := "MET"
	if got > limit {
		verdict = "NOT MET"
	}
	fmt.Printf("target %s: %s (%s)\n", what, verdict, ms(got))
}

// benchPodMemory starts one idle stage1-ns pod (an app that sleeps) and
// reports the proportional set size (PSS, /proc/PID/smaps_rollup) of its
// host-side processes, stage1 (stage0 exec'd it) and systemd-nspawn,
// apart from the pod's own systemd, journald and app.
func benchPodMemory(ctx context.Context, cfg config, suffix string) error {
	p, err := setupPods(ctx, cfg)
	if err != nil {
		return err
	}
	uuidFile := filepath.Join(p.dir, "mem-uuid")
	os.Remove(uuidFile)
	cmd, cancel := command(ctx, nil, cfg.skiff, p.skiff("run", "--net=none", "--uuid-file-save="+uuidFile,
		"skiff.local/busybox", "--exec=/bin/sleep", "--", "600")...)
	defer cancel()
	if err := cmd.Start(); err != nil {
		return err
	}
	var uuid string
	stopped := false
	defer func() {
		if !stopped && uuid != "" {
			output(ctx, nil, cfg.skiff, p.skiff("stop", "--force", uuid)...)
		} else if !stopped {
			cmd.Process.Kill()
		}
		cmd.Wait()
		p.gc(ctx, cfg)
	}()
	for deadline := time.Now().Add(time.Minute); uuid == ""; time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(uuidFile); err == nil {
			uuid = strings.TrimSpace(string(b))
		}
		if time.Now().After(deadline) {
			return errors.New("memory: the pod wrote no uuid in 1 min")
		}
	}
	if _, err := output(ctx, nil, cfg.skiff, p.skiff("status", "--wait-ready=60s", uuid)...); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the pod settle: idle, not booting
	procs, err := descendants(cmd.Process.Pid)
	if err != nil {
		return err
	}
	groups := map[string]int64{}
	var order []string
	for _, pr := range procs {
		kb, err := pss(pr.pid)
		if err != nil {
			continue // gone meanwhile
		}
		g := pr.group()
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] += kb
	}
	fmt.Printf("\npods: host memory of one idle stage1-ns pod (PSS from /proc/PID/smaps_rollup, busybox sleep, --net=none)%s\n", suffix)
	var host int64
	for _, g := range order {
		fmt.Printf("  %-40s %6.1f MB\n", g, float64(groups[g])/1024)
		if strings.HasPrefix(g, "host:") {
			host += groups[g]
		}
	}
	fmt.Printf("  %-40s %6.1f MB\n", "host side (stage1 + nspawn)", float64(host)/1024)
	verdict := "MET"
	if host > 12*1024 {
		verdict = "NOT MET"
	}
	fmt.Printf("target host memory per idle ns pod ≤ 12 MB: %s (%.1f MB)\n", verdict, float64(host)/1024)
	if _, err := output(ctx, nil, cfg.skiff, p.skiff("stop", uuid)...); err != nil {
		return err
	}
	stopped = true
	return nil
}

// proc is one process of a pod's tree.
type proc struct {
	pid   int
	comm  string
	inPod bool // below systemd-nspawn: the pod's own
}

// group names what a process counts as in the memory report.
func (p proc) group() string {
	switch {
	case !p.inPod:
		return "host: " + p.comm
	case p.comm == "systemd" || p.comm == "systemd-journal":
		return "pod: " + p.comm
	}
	return "pod: apps and the rest (" + p.comm + ")"
}

// descendants lists root and every process below it.
func descendants(root int) ([]proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	comm := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parens.
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(s[j+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
		comm[pid] = s[i+1 : j]
	}
	var out []proc
	var walk func(pid int, inPod bool)
	walk = func(pid int, inPod bool) {
		out = append(out, proc{pid, comm[pid], inPod})
		for _, c := range children[pid] {
			walk(c, inPod || comm[pid] == "systemd-nspawn")
		}
	}
	walk(root, false)
	return out, nil
}

// pss reads a process's proportional set size in kB.
func pss(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "Pss:" {
			return strconv.ParseInt(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("pid %d: no Pss in smaps_rollup", pid)
}

// mountNSThread is one harness thread in a private mount namespace;
// commands started from it inherit the namespace.
type mountNSThread struct{ work chan func() }

func newMountNSThread() (*mountNSThread, error) {
	t := &mountNSThread{work: make(chan func())}
	errc := make(chan error)
	go func() {
		// Never unlocked: the thread exits with the goroutine, and its
		// namespace (with every mount made there) with the last process.
		runtime.LockOSThread()
		err := unix.Unshare(unix.CLONE_NEWNS)
		if err == nil {
			err = unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
		}
		errc <- err
		if err != nil {
			return
		}
		for f := range t.work {
			f()
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("private mount namespace: %w", err)
	}
	return t, nil
}

func (t *mountNSThread) do(f func()) {
	done := make(chan struct{})
	t.work <- func() { f(); close(done) }
	<-done
}

func (t *mountNSThread) close() { close(t.work) }

// podGone checks that nothing of pod uuid is left in store, on disk or in
// the namespace's mount table.
func (t *mountNSThread) podGone(store, uuid string) (err error) {
	if m, _ := filepath.Glob(filepath.Join(store, "pods", "*", uuid)); len(m) > 0 {
		return fmt.Errorf("skiff rm left %s", m[0])
	}
	t.do(func() {
		var b []byte
		b, err = exec.Command("cat", "/proc/self/mountinfo").Output()
		if err == nil && strings.Contains(string(b), uuid) {
			err = fmt.Errorf("skiff rm left a mount of pod %s", uuid)
		}
	})
	return err
}
